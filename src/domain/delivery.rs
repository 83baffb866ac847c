//! A delivery's status, and what became of one claimed for an attempt.
//!
//! Redis and its scripts hold the status as text (`pending`, `succeeded`,
//! `failed`); the store turns it into a [`DeliveryStatus`] when it reads a
//! delivery, and the API and the dashboard print it back as the same text.

use serde::Serialize;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Due, waiting for its due time, or being attempted.
    Pending,
    /// An attempt was answered with success.
    Succeeded,
    /// No retries left, or dropped (subscription disabled or deleted).
    Failed,
}

impl DeliveryStatus {
    /// Every status, in the order forms and documents list them.
    pub const ALL: [DeliveryStatus; 3] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Failed,
    ];

    /// The status named by `text` as courier prints it; None for any
    /// other text.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of a claimed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The attempt failed; try again at `due_ms`.
    Retry {
        due_ms: i64,
    },
    /// The attempt failed and there will be no other.
    Fail {
        error: String,
    },
    /// Nothing was sent (circuit open, endpoint busy, shutting down); due
    /// again at `due_ms` without spending an attempt.
    Wait {
        due_ms: i64,
    },
    /// Nothing was sent and nothing will be (subscription gone or disabled).
    Drop {
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_print_and_parse_back() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        let names: Vec<&str> = DeliveryStatus::ALL.map(DeliveryStatus::as_str).to_vec();
        assert_eq!(names, ["pending", "succeeded", "failed"]);
    }

    #[test]
    fn unknown_status_text_is_refused() {
        for text in [
            "", "Pending", "PENDING", " pending", "pending ", "dropped", "success",
        ] {
            assert_eq!(DeliveryStatus::parse(text), None, "{text:?}");
        }
    }
}
