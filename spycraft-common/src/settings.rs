// SPDX-License-Identifier: AGPL-3.0-or-later
//! Port ranges as operators write them: `5060` or `5080-5090` on the command line, a number or
//! such a string in a settings file.

use core::fmt;
use core::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::PortRange;

/// Text that is not a port or port range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadPortRange(pub String);

impl fmt::Display for BadPortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a port or port range (5060, 5080-5090)",
            self.0
        )
    }
}

impl std::error::Error for BadPortRange {}

impl FromStr for PortRange {
    type Err = BadPortRange;

    /// `5060` or `5080-5090`; port 0 and reversed ranges are refused.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadPortRange(text.to_owned());
        let (first, last) = match text.trim().split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (text.trim(), text.trim()),
        };
        let first: u16 = first.parse().map_err(|_| bad())?;
        let last: u16 = last.parse().map_err(|_| bad())?;
        if first > last || first == 0 {
            return Err(bad());
        }
        Ok(Self { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// One port as a number, a range as text: the way it is read.
impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.first == self.last {
            serializer.serialize_u16(self.first)
        } else {
            serializer.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PortRangeVisitor)
    }
}

struct PortRangeVisitor;

impl Visitor<'_> for PortRangeVisitor {
    type Value = PortRange;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a port (5060) or a range as text (\"5080-5090\")")
    }

    fn visit_i64<E: de::Error>(self, port: i64) -> Result<PortRange, E> {
        match u16::try_from(port) {
            Ok(port) if port > 0 => Ok(PortRange::single(port)),
            _ => Err(E::custom(format_args!("{port} is not a port (1-65535)"))),
        }
    }

    fn visit_u64<E: de::Error>(self, port: u64) -> Result<PortRange, E> {
        self.visit_i64(i64::try_from(port).unwrap_or(i64::MAX))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<PortRange, E> {
        text.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        for text in ["5060", "5080-5090", "1-65535"] {
            let range: PortRange = text.parse().expect(text);
            assert_eq!(range.to_string(), text);
        }
        for bad in ["0", "5090-5080", "x", "70000", "5060-", ""] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
    }
}
