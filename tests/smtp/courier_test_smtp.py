"""The SMTP server of courier's tests: aiosmtpd's Mailbox handler (every
accepted message becomes a file in a maildir), which refuses recipients
whose local part starts with `reject` (550, permanent) or `busy` (451,
temporary), so tests can see both kinds of SMTP failure, holds
recipients starting with `slow` for a minute (a message in flight), and
those starting with `late` for five seconds before accepting them (a send
longer than a short claim lease).

Run: PYTHONPATH=tests/smtp python3 -m aiosmtpd -n -l 127.0.0.1:PORT \
       -c courier_test_smtp.Handler MAILDIR
"""

import asyncio

from aiosmtpd.handlers import Mailbox


class Handler(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        if local.startswith("busy"):
            return "451 4.3.0 <%s>: try again later" % address
        if local.startswith("slow"):
            await asyncio.sleep(60)
        if local.startswith("late"):
            await asyncio.sleep(5)
        envelope.rcpt_tos.append(address)
        return "250 OK"
