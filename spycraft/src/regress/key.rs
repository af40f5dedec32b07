// SPDX-License-Identifier: AGPL-3.0-or-later
//! What pairs a call of one run with the same call of another: its dialog (Call-ID and From
//! tag) by default, or fields that survive a platform making new Call-IDs each run.

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value};

/// A field calls can be matched on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyField {
    /// A record field, as text.
    Field(&'static str),
    /// The call's place, by INVITE time, among the calls alike in the other key fields.
    InviteOrder,
}

/// Record fields that may serve as keys.
const KEY_FIELDS: [&str; 9] = [
    "call_id",
    "from_tag",
    "from_user",
    "to_user",
    "from_uri",
    "to_uri",
    "request_uri",
    "caller_ip",
    "callee_ip",
];

/// How calls are paired: `--match-on`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchOn(Vec<KeyField>);

impl Default for MatchOn {
    /// The dialog: Call-ID and From tag.
    fn default() -> Self {
        Self(vec![
            KeyField::Field("call_id"),
            KeyField::Field("from_tag"),
        ])
    }
}

impl std::str::FromStr for MatchOn {
    type Err = String;

    /// A comma-separated list: `from_user,to_user,invite_order`.
    fn from_str(list: &str) -> Result<Self, String> {
        let fields = list
            .split(',')
            .map(str::trim)
            .map(|name| match name {
                "invite_order" => Ok(KeyField::InviteOrder),
                _ => KEY_FIELDS
                    .iter()
                    .find(|f| **f == name)
                    .map(|f| KeyField::Field(f))
                    .ok_or_else(|| {
                        format!(
                            "{name:?} cannot pair calls; use {} or invite_order",
                            KEY_FIELDS.join(", ")
                        )
                    }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if fields.iter().all(|f| *f == KeyField::InviteOrder) {
            return Err("--match-on needs a record field beside invite_order".into());
        }
        Ok(Self(fields))
    }
}

/// A call's key: its key fields' values, in `--match-on` order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallKey(Vec<String>);

impl fmt::Display for CallKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" / "))
    }
}

impl MatchOn {
    /// The key of each of `records`; a record without a key field is refused, with its
    /// place in `records`. `invite_order` orders by `invite_at`, records without one by
    /// their place.
    pub fn keys<'a>(
        &self,
        records: impl Iterator<Item = &'a Map<String, Value>>,
    ) -> Result<Vec<CallKey>, (usize, String)> {
        let mut keys = Vec::new();
        let mut invites = Vec::new();
        for (at, record) in records.enumerate() {
            let mut parts = Vec::with_capacity(self.0.len());
            for field in &self.0 {
                let KeyField::Field(name) = field else {
                    continue;
                };
                match record.get(*name) {
                    Some(Value::String(s)) => parts.push(s.clone()),
                    Some(Value::Null) => parts.push(String::new()),
                    Some(other) => parts.push(other.to_string()),
                    None => return Err((at, format!("no {name} to match calls on"))),
                }
            }
            // Without a time (a `--stable` file), a record's place in the list stands for
            // its order.
            let invite = match record.get("invite_at") {
                Some(Value::String(t)) => t.clone(),
                _ => String::new(),
            };
            keys.push(parts);
            invites.push(invite);
        }
        if let Some(place) = self.0.iter().position(|f| *f == KeyField::InviteOrder) {
            // Times are RFC 3339 in UTC with a fixed number of digits: as text they sort as
            // times do.
            let mut order: Vec<usize> = (0..keys.len()).collect();
            order.sort_by(|&a, &b| invites[a].cmp(&invites[b]).then(a.cmp(&b)));
            let mut seen: HashMap<Vec<String>, u32> = HashMap::new();
            let mut nth = vec![0; keys.len()];
            for at in order {
                let n = seen.entry(keys[at].clone()).or_insert(0);
                *n += 1;
                nth[at] = *n;
            }
            for (parts, n) in keys.iter_mut().zip(nth) {
                parts.insert(place.min(parts.len()), format!("#{n}"));
            }
        }
        Ok(keys.into_iter().map(CallKey).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(from: &str, to: &str, at: &str) -> Map<String, Value> {
        serde_json::json!({"call_id": format!("{from}-{at}"), "from_tag": "t",
            "from_user": from, "to_user": to, "invite_at": at})
        .as_object()
        .expect("an object")
        .clone()
    }

    #[test]
    fn invite_order_numbers_the_calls_alike_by_time() {
        let records = [
            record("alice", "bob", "2026-12-04T10:00:02.000000Z"),
            record("alice", "bob", "2026-12-04T10:00:01.000000Z"),
            record("carol", "bob", "2026-12-04T10:00:03.000000Z"),
        ];
        let on: MatchOn = "from_user,to_user,invite_order".parse().expect("a list");
        let keys = on.keys(records.iter()).expect("keys");
        let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["alice / bob / #2", "alice / bob / #1", "carol / bob / #1"]
        );
        // Without times, the order listed.
        let untimed: Vec<_> = records
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.remove("invite_at");
                r
            })
            .collect();
        let keys = on.keys(untimed.iter()).expect("keys");
        assert_eq!(keys[0].to_string(), "alice / bob / #1");
        let dialog = MatchOn::default().keys(records.iter()).expect("keys");
        assert_eq!(
            dialog[0].to_string(),
            "alice-2026-12-04T10:00:02.000000Z / t"
        );
    }

    #[test]
    fn unknown_key_fields_and_missing_values_are_refused() {
        assert!("from_user,disposition".parse::<MatchOn>().is_err());
        assert!("invite_order".parse::<MatchOn>().is_err());
        let mut r = record("alice", "bob", "2026-12-04T10:00:00.000000Z");
        r.remove("from_tag");
        let e = MatchOn::default()
            .keys([&r].into_iter())
            .expect_err("no tag");
        assert_eq!(e, (0, "no from_tag to match calls on".into()));
    }
}
