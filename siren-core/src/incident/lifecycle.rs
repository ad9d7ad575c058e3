//! An incident's lifecycle: its statuses, the moves between them, and resolutions.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where an incident is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Opened, nobody has looked yet.
    New,
    /// Someone has seen it.
    Acknowledged,
    /// Being investigated.
    InProgress,
    /// Handed up to a senior analyst or incident response.
    Escalated,
    /// Decided (with a [`Resolution`]).
    Resolved,
    /// Done; no further change.
    Closed,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 6] = [
        Status::New,
        Status::Acknowledged,
        Status::InProgress,
        Status::Escalated,
        Status::Resolved,
        Status::Closed,
    ];

    /// The status's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Acknowledged => "acknowledged",
            Status::InProgress => "in_progress",
            Status::Escalated => "escalated",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }

    /// Parses a status name (`in-progress` is accepted for `in_progress`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase().replace('-', "_");
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether alerts still join an incident in this status.
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Resolved | Status::Closed)
    }

    /// The statuses an incident may move to from this one.
    ///
    /// `new → acknowledged → in_progress → resolved → closed`, `escalated` from any open
    /// status, resolving straight from any open status (a quick false-positive call), and
    /// reopening a resolved incident (`in_progress`). `closed` is final.
    pub fn next(self) -> &'static [Status] {
        use Status::*;
        match self {
            New => &[Acknowledged, InProgress, Escalated, Resolved],
            Acknowledged => &[InProgress, Escalated, Resolved],
            InProgress => &[Escalated, Resolved],
            Escalated => &[InProgress, Resolved],
            Resolved => &[Closed, InProgress],
            Closed => &[],
        }
    }

    /// Checks a move from `self` to `to`, with the resolution a move to `resolved` needs.
    pub fn check_transition(
        self,
        to: Status,
        resolution: Option<Resolution>,
    ) -> Result<(), TransitionError> {
        if !self.next().contains(&to) {
            return Err(TransitionError::NotAllowed { from: self, to });
        }
        match (to, resolution) {
            (Status::Resolved, None) => Err(TransitionError::ResolutionRequired),
            (Status::Resolved, Some(_)) | (_, None) => Ok(()),
            (_, Some(_)) => Err(TransitionError::ResolutionOnlyOnResolve),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused status change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The lifecycle does not allow it.
    #[error("cannot move an incident from {from} to {to}: from {from} it can go to {}", list(from.next()))]
    NotAllowed {
        /// Current status.
        from: Status,
        /// Requested status.
        to: Status,
    },
    /// Resolving needs a resolution.
    #[error("resolving needs a resolution: true_positive, false_positive or benign")]
    ResolutionRequired,
    /// A resolution was given for another status.
    #[error("a resolution is only given when resolving")]
    ResolutionOnlyOnResolve,
}

fn list(statuses: &[Status]) -> String {
    if statuses.is_empty() {
        return "nowhere (it is final)".to_owned();
    }
    statuses
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a resolved incident turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// A real attack or policy breach.
    TruePositive,
    /// The rule fired on something harmless it should not have.
    FalsePositive,
    /// The activity happened but was expected (an admin, a test).
    Benign,
}

impl Resolution {
    /// The resolution's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::TruePositive => "true_positive",
            Resolution::FalsePositive => "false_positive",
            Resolution::Benign => "benign",
        }
    }

    /// Parses a resolution name (`-` may stand for `_`).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "true_positive" | "tp" => Some(Resolution::TruePositive),
            "false_positive" | "fp" => Some(Resolution::FalsePositive),
            "benign" => Some(Resolution::Benign),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_allows_the_documented_moves_only() {
        assert!(
            Status::New
                .check_transition(Status::Acknowledged, None)
                .is_ok()
        );
        assert!(
            Status::InProgress
                .check_transition(Status::Resolved, Some(Resolution::TruePositive))
                .is_ok()
        );
        assert_eq!(
            Status::InProgress.check_transition(Status::Resolved, None),
            Err(TransitionError::ResolutionRequired)
        );
        let refused = Status::Closed
            .check_transition(Status::New, None)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("from closed to new"), "{refused}");
        let refused = Status::New
            .check_transition(Status::Closed, None)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("acknowledged, in_progress, escalated, resolved"),
            "{refused}"
        );
        assert!(
            Status::Resolved
                .check_transition(Status::InProgress, None)
                .is_ok(),
            "reopen"
        );
        assert_eq!(Status::parse("In-Progress"), Some(Status::InProgress));
    }

    /// The moves the README documents, written out here (not taken from `Status::next`):
    /// a row per current status, `x` where the column's status may follow.
    const MOVES: &str = "
        from          new ack in_progress escalated resolved closed
        new            .   x       x          x        x       .
        acknowledged   .   .       x          x        x       .
        in_progress    .   .       .          x        x       .
        escalated      .   .       x          .        x       .
        resolved       .   .       x          .        .       x
        closed         .   .       .          .        .       .
    ";

    #[test]
    fn every_status_pair_is_allowed_or_refused_as_documented() {
        let rows: Vec<Vec<&str>> = MOVES
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .filter(|cells| !cells.is_empty())
            .skip(1)
            .collect();
        assert_eq!(rows.len(), Status::ALL.len());
        let mut pairs = 0;
        for (from, row) in Status::ALL.into_iter().zip(&rows) {
            assert_eq!(row[0], from.as_str());
            for (to, cell) in Status::ALL.into_iter().zip(&row[1..]) {
                let allowed = *cell == "x";
                for resolution in [None, Some(Resolution::FalsePositive)] {
                    pairs += 1;
                    let result = from.check_transition(to, resolution);
                    let expected = if !allowed {
                        Err(TransitionError::NotAllowed { from, to })
                    } else {
                        match (to, resolution) {
                            (Status::Resolved, None) => Err(TransitionError::ResolutionRequired),
                            (Status::Resolved, Some(_)) | (_, None) => Ok(()),
                            (_, Some(_)) => Err(TransitionError::ResolutionOnlyOnResolve),
                        }
                    };
                    assert_eq!(result, expected, "{from} → {to} with {resolution:?}");
                }
            }
        }
        assert_eq!(pairs, 72);
        assert_eq!(
            Resolution::parse("false-positive"),
            Some(Resolution::FalsePositive)
        );
    }
}
