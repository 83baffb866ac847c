-- Shared by the scripts of an endpoint's state (one hash per endpoint URL;
-- every script touches that one key, so it is single-slot on a cluster).

-- The fields a replica reads, in the order `store::endpoints` decodes them.
local function endpoint_fields(h)
  return redis.call('HMGET', h, 'v', 'failures', 'open_until', 'cooldown', 'probe',
    'probe_at', 'probe_until', 'last_success', 'failing_since')
end
