//! Delivery and job status machines.
//!
//! [`DeliveryStatus::can_transition_to`] is the single source of truth for
//! which status changes are legal; storage layers should check it before
//! writing.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Error returned when a string is not a known status; lists allowed values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {value:?}: expected one of {allowed}")]
pub struct UnknownStatus {
    /// The rejected input.
    pub value: String,
    /// Comma-separated list of the accepted values.
    pub allowed: &'static str,
}

/// The lifecycle state of one delivery (one message to one endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first (or operator-requested) attempt.
    Pending,
    /// Leased by a worker; an attempt is running.
    InProgress,
    /// Waiting for a scheduled retry.
    Retrying,
    /// A 2xx response was received.
    Delivered,
    /// The retry policy gave up.
    Failed,
    /// Cancelled by an operator.
    Cancelled,
}

impl DeliveryStatus {
    /// Every delivery status.
    pub const ALL: [DeliveryStatus; 6] = [
        DeliveryStatus::Pending,
        DeliveryStatus::InProgress,
        DeliveryStatus::Retrying,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
        DeliveryStatus::Cancelled,
    ];

    const ALLOWED: &'static str = "pending, in_progress, retrying, delivered, failed, cancelled";

    /// The snake_case name, identical to the serde representation.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::InProgress => "in_progress",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    /// Whether no further automatic progress happens (delivered, failed or
    /// cancelled).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Delivered | DeliveryStatus::Failed | DeliveryStatus::Cancelled
        )
    }

    /// Whether moving from `self` to `next` is legal.
    pub fn can_transition_to(self, next: DeliveryStatus) -> bool {
        use DeliveryStatus::*;
        matches!(
            (self, next),
            (Pending, InProgress | Cancelled)
                | (
                    InProgress,
                    Delivered | Retrying | Failed | Cancelled | Pending
                )
                | (Retrying, InProgress | Cancelled | Pending)
                | (Failed | Cancelled | Delivered, Pending)
        )
    }

    /// Whether an operator may cancel a delivery in this status (non-final).
    pub fn cancellable(self) -> bool {
        !self.is_final()
    }

    /// Whether an operator may request a fresh attempt (everything except a
    /// running attempt).
    pub fn retryable_by_operator(self) -> bool {
        self != DeliveryStatus::InProgress
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownStatus {
                value: s.to_owned(),
                allowed: Self::ALLOWED,
            })
    }
}

/// The lifecycle state of a background job (e.g. a bulk replay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted, not started yet.
    Accepted,
    /// Currently running.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Cancelled before completion.
    Cancelled,
}

impl JobStatus {
    /// Every job status.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Accepted,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    const ALLOWED: &'static str = "accepted, running, succeeded, failed, cancelled";

    /// The snake_case name, identical to the serde representation.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Accepted => "accepted",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the job has finished (succeeded, failed or cancelled).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownStatus {
                value: s.to_owned(),
                allowed: Self::ALLOWED,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::DeliveryStatus::*;
    use super::*;

    #[test]
    fn transition_table() {
        // Rows: from; columns in ALL order: Pending, InProgress, Retrying,
        // Delivered, Failed, Cancelled.
        let table: [(DeliveryStatus, [bool; 6]); 6] = [
            (Pending, [false, true, false, false, false, true]),
            (InProgress, [true, false, true, true, true, true]),
            (Retrying, [true, true, false, false, false, true]),
            (Delivered, [true, false, false, false, false, false]),
            (Failed, [true, false, false, false, false, false]),
            (Cancelled, [true, false, false, false, false, false]),
        ];
        for (from, row) in table {
            for (to, want) in DeliveryStatus::ALL.into_iter().zip(row) {
                assert_eq!(from.can_transition_to(to), want, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn predicates() {
        let cases = [
            // status, is_final, cancellable, retryable_by_operator
            (Pending, false, true, true),
            (InProgress, false, true, false),
            (Retrying, false, true, true),
            (Delivered, true, false, true),
            (Failed, true, false, true),
            (Cancelled, true, false, true),
        ];
        for (s, fin, cancel, retry) in cases {
            assert_eq!(s.is_final(), fin, "{s}");
            assert_eq!(s.cancellable(), cancel, "{s}");
            assert_eq!(s.retryable_by_operator(), retry, "{s}");
        }
    }

    #[test]
    fn strings() {
        for s in DeliveryStatus::ALL {
            assert_eq!(s.as_str().parse::<DeliveryStatus>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        let err = "done".parse::<DeliveryStatus>().unwrap_err();
        assert!(err.to_string().contains("pending, in_progress"), "{err}");
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!("InProgress".parse::<DeliveryStatus>().is_err());
        assert!("running".parse::<JobStatus>().is_ok());
        let finals: Vec<_> = JobStatus::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(
            finals,
            [
                JobStatus::Succeeded,
                JobStatus::Failed,
                JobStatus::Cancelled
            ]
        );
    }
}
