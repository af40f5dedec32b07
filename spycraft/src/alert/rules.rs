// SPDX-License-Identifier: AGPL-3.0-or-later
//! The rules: what each watches, its defaults, and the `[[alert]]` tables that change them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The rules spycraft knows. Each counts something per offender (a source address, or an
/// account: the From user) within a window of capture time and fires at its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// A request whose User-Agent names a known attack tool (`patterns`).
    Scanner,
    /// One source told "no such user" or "forbidden" (403, 404, 484, 604) for many
    /// distinct To users: extensions being enumerated.
    Enumeration,
    /// One user at one source refused authentication (401, 403, 407) again and again, with
    /// no other final answer between: a password being guessed.
    BruteForce,
    /// One source failing authentication twice in a row for many distinct users: one
    /// password tried against many accounts.
    Spraying,
    /// REGISTER requests from one source.
    RegisterFlood,
    /// INVITE requests from one source.
    InviteFlood,
    /// OPTIONS requests from one source.
    OptionsFlood,
    /// New calls from one account to destinations starting with `patterns` (international,
    /// premium-rate).
    PremiumCalls,
    /// Calls of one account in progress at once.
    ConcurrentCalls,
    /// New calls from one account.
    CallsPerMinute,
    /// A call lasting longer than the threshold, in seconds.
    LongCall,
    /// Messages on a SIP port from one source that are not SIP (parse errors).
    Malformed,
}

impl RuleKind {
    /// Every rule, in signature id order.
    pub const ALL: [RuleKind; 12] = [
        Self::Scanner,
        Self::Enumeration,
        Self::BruteForce,
        Self::Spraying,
        Self::RegisterFlood,
        Self::InviteFlood,
        Self::OptionsFlood,
        Self::PremiumCalls,
        Self::ConcurrentCalls,
        Self::CallsPerMinute,
        Self::LongCall,
        Self::Malformed,
    ];

    /// The rule's name, as in settings, `/metrics` and the log lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::Scanner => "scanner",
            Self::Enumeration => "enumeration",
            Self::BruteForce => "brute_force",
            Self::Spraying => "spraying",
            Self::RegisterFlood => "register_flood",
            Self::InviteFlood => "invite_flood",
            Self::OptionsFlood => "options_flood",
            Self::PremiumCalls => "premium_calls",
            Self::ConcurrentCalls => "concurrent_calls",
            Self::CallsPerMinute => "calls_per_minute",
            Self::LongCall => "long_call",
            Self::Malformed => "malformed",
        }
    }

    /// The signature id in alerts: spycraft's own range, 8,100,001 on, stable per rule
    /// (Suricata keeps 1,000,000–1,999,999 for local rules; these do not collide with it).
    pub fn signature_id(self) -> u32 {
        8_100_001 + self as u32
    }

    /// What an alert of this rule says.
    pub fn signature(self) -> &'static str {
        match self {
            Self::Scanner => "SPYCRAFT SIP scanner User-Agent",
            Self::Enumeration => "SPYCRAFT SIP extension enumeration",
            Self::BruteForce => "SPYCRAFT SIP digest brute force",
            Self::Spraying => "SPYCRAFT SIP password spraying",
            Self::RegisterFlood => "SPYCRAFT SIP REGISTER flood",
            Self::InviteFlood => "SPYCRAFT SIP INVITE flood",
            Self::OptionsFlood => "SPYCRAFT SIP OPTIONS flood",
            Self::PremiumCalls => {
                "SPYCRAFT SIP toll fraud: calls to premium or international prefixes"
            }
            Self::ConcurrentCalls => "SPYCRAFT SIP toll fraud: concurrent calls of one account",
            Self::CallsPerMinute => "SPYCRAFT SIP toll fraud: call rate of one account",
            Self::LongCall => "SPYCRAFT SIP toll fraud: unusually long call",
            Self::Malformed => "SPYCRAFT SIP malformed messages",
        }
    }

    /// The alert's category, in Suricata's classification names.
    pub fn category(self) -> &'static str {
        match self {
            Self::Scanner | Self::Enumeration => "Attempted Information Leak",
            Self::BruteForce | Self::Spraying => "Attempted User Privilege Gain",
            Self::RegisterFlood | Self::InviteFlood | Self::OptionsFlood => {
                "Attempted Denial of Service"
            }
            Self::PremiumCalls | Self::ConcurrentCalls | Self::CallsPerMinute | Self::LongCall => {
                "Potential Corporate Privacy Violation"
            }
            Self::Malformed => "Potentially Bad Traffic",
        }
    }

    /// Whether the rule counts per account (the From user) rather than per source address.
    pub fn per_account(self) -> bool {
        matches!(
            self,
            Self::PremiumCalls | Self::ConcurrentCalls | Self::CallsPerMinute | Self::LongCall
        )
    }

    /// Whether `patterns` mean something to this rule.
    fn takes_patterns(self) -> bool {
        matches!(self, Self::Scanner | Self::PremiumCalls)
    }

    /// The rule as it stands without settings.
    fn default_rule(self) -> Rule {
        let (threshold, window_secs, severity) = match self {
            Self::Scanner => (1, 60, 2),
            Self::Enumeration => (20, 60, 2),
            Self::BruteForce => (10, 60, 1),
            Self::Spraying => (5, 60, 1),
            Self::RegisterFlood => (300, 10, 2),
            Self::InviteFlood => (500, 10, 2),
            Self::OptionsFlood => (300, 10, 3),
            Self::PremiumCalls => (10, 300, 1),
            Self::ConcurrentCalls => (40, 60, 1),
            Self::CallsPerMinute => (60, 60, 2),
            Self::LongCall => (4 * 3600, 3600, 3),
            Self::Malformed => (50, 60, 3),
        };
        let patterns: &[&str] = match self {
            Self::Scanner => &DEFAULT_SCANNERS,
            Self::PremiumCalls => &["00", "011"],
            _ => &[],
        };
        Rule {
            kind: self,
            enabled: true,
            threshold,
            window_secs,
            severity,
            patterns: patterns.iter().map(|p| p.to_ascii_lowercase()).collect(),
        }
    }
}

/// User-Agents of attack tools: sipvicious (its `friendly-scanner` too), sipsak, smap,
/// sipcli, VaxSIPUserAgent, and other scanners seen in honeypots and Emerging Threats rules.
const DEFAULT_SCANNERS: [&str; 12] = [
    "friendly-scanner",
    "sipvicious",
    "sipsak",
    "smap",
    "sipcli",
    "vaxsipuseragent",
    "sip-scan",
    "sipscan",
    "iwar",
    "sivus",
    "sundayddr",
    "pplsip",
];

/// One rule, decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Which rule.
    #[serde(rename = "rule")]
    pub kind: RuleKind,
    /// Whether it runs.
    pub enabled: bool,
    /// How many in a window fire it (for `long_call`: seconds of the call).
    pub threshold: u32,
    /// The window, in seconds of capture time; also how often an attack that goes on is
    /// summed up again.
    pub window_secs: u32,
    /// 1 (high) to 3 (low), as Suricata's severities.
    pub severity: u8,
    /// User-Agent substrings (`scanner`) or destination prefixes (`premium_calls`), compared
    /// without regard to case.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
}

/// An `[[alert]]` table: the rule it changes and what it changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleLayer {
    /// Which rule (required).
    pub rule: Option<RuleKind>,
    /// Whether it runs.
    pub enabled: Option<bool>,
    /// How many in a window fire it.
    pub threshold: Option<u32>,
    /// The window in seconds.
    pub window_secs: Option<u32>,
    /// 1 (high) to 3 (low).
    pub severity: Option<u8>,
    /// User-Agent substrings or destination prefixes, in place of the defaults.
    pub patterns: Option<Vec<String>>,
}

/// Why `[[alert]]` tables cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A table without `rule`.
    #[error("[[alert]] table {0} names no rule")]
    NoRule(usize),
    /// Two tables for one rule.
    #[error("[[alert]] rule {0:?} is given twice")]
    Twice(&'static str),
    /// A zero threshold or window.
    #[error("[[alert]] rule {rule:?}: {field} must be at least 1")]
    Zero {
        /// The rule.
        rule: &'static str,
        /// `threshold` or `window_secs`.
        field: &'static str,
    },
    /// A severity outside 1..=3.
    #[error("[[alert]] rule {0:?}: severity must be 1, 2 or 3")]
    Severity(&'static str),
    /// Patterns for a rule that has none, or an empty pattern.
    #[error("[[alert]] rule {0:?}: {1}")]
    Patterns(&'static str, &'static str),
}

/// Every rule, defaults changed by the `[[alert]]` tables.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Rules(Vec<Rule>);

impl Default for Rules {
    fn default() -> Self {
        Self(RuleKind::ALL.iter().map(|k| k.default_rule()).collect())
    }
}

impl Rules {
    /// The defaults changed by `tables`, each checked.
    pub fn new(tables: &[RuleLayer]) -> Result<Self, RuleError> {
        let mut seen = BTreeMap::new();
        let mut rules = Self::default();
        for (n, table) in tables.iter().enumerate() {
            let kind = table.rule.ok_or(RuleError::NoRule(n + 1))?;
            let name = kind.name();
            if seen.insert(kind, ()).is_some() {
                return Err(RuleError::Twice(name));
            }
            let rule = &mut rules.0[kind as usize];
            rule.enabled = table.enabled.unwrap_or(rule.enabled);
            rule.threshold = table.threshold.unwrap_or(rule.threshold);
            rule.window_secs = table.window_secs.unwrap_or(rule.window_secs);
            rule.severity = table.severity.unwrap_or(rule.severity);
            for (field, value) in [
                ("threshold", rule.threshold),
                ("window_secs", rule.window_secs),
            ] {
                if value == 0 {
                    return Err(RuleError::Zero { rule: name, field });
                }
            }
            if !(1..=3).contains(&rule.severity) {
                return Err(RuleError::Severity(name));
            }
            if let Some(patterns) = &table.patterns {
                if !kind.takes_patterns() {
                    return Err(RuleError::Patterns(name, "this rule takes no patterns"));
                }
                if patterns.iter().any(|p| p.trim().is_empty()) {
                    return Err(RuleError::Patterns(name, "a pattern is empty"));
                }
                rule.patterns = patterns.iter().map(|p| p.to_ascii_lowercase()).collect();
            }
        }
        Ok(rules)
    }

    /// The rule of this kind.
    pub fn get(&self, kind: RuleKind) -> &Rule {
        &self.0[kind as usize]
    }

    /// The rule of this kind, if it runs.
    pub fn enabled(&self, kind: RuleKind) -> Option<&Rule> {
        Some(self.get(kind)).filter(|r| r.enabled)
    }

    /// Every rule.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_change_the_defaults_and_mistakes_are_named() {
        let tables: Vec<RuleLayer> = toml::from_str::<BTreeMap<String, Vec<RuleLayer>>>(
            "[[alert]]\nrule = \"invite_flood\"\nthreshold = 50\nwindow_secs = 5\n\
             [[alert]]\nrule = \"scanner\"\npatterns = [\"EvilTool\"]\n\
             [[alert]]\nrule = \"long_call\"\nenabled = false\n",
        )
        .expect("tables")
        .remove("alert")
        .expect("alert");
        let rules = Rules::new(&tables).expect("rules");
        let flood = rules.get(RuleKind::InviteFlood);
        assert_eq!((flood.threshold, flood.window_secs), (50, 5));
        assert_eq!(rules.get(RuleKind::Scanner).patterns, ["eviltool"]);
        assert!(rules.enabled(RuleKind::LongCall).is_none());
        assert_eq!(rules.get(RuleKind::Spraying).threshold, 5, "untouched");

        let one = |table: RuleLayer| Rules::new(&[table]).expect_err("refused").to_string();
        let rule = |kind| RuleLayer {
            rule: Some(kind),
            ..RuleLayer::default()
        };
        assert_eq!(one(RuleLayer::default()), "[[alert]] table 1 names no rule");
        assert_eq!(
            one(RuleLayer {
                threshold: Some(0),
                ..rule(RuleKind::Enumeration)
            }),
            "[[alert]] rule \"enumeration\": threshold must be at least 1"
        );
        assert_eq!(
            one(RuleLayer {
                severity: Some(4),
                ..rule(RuleKind::Scanner)
            }),
            "[[alert]] rule \"scanner\": severity must be 1, 2 or 3"
        );
        assert_eq!(
            one(RuleLayer {
                patterns: Some(vec!["x".into()]),
                ..rule(RuleKind::InviteFlood)
            }),
            "[[alert]] rule \"invite_flood\": this rule takes no patterns"
        );
        let twice = Rules::new(&[rule(RuleKind::Scanner), rule(RuleKind::Scanner)]);
        assert_eq!(twice, Err(RuleError::Twice("scanner")));
    }

    #[test]
    fn signature_ids_are_stable() {
        assert_eq!(RuleKind::Scanner.signature_id(), 8_100_001);
        assert_eq!(RuleKind::LongCall.signature_id(), 8_100_011);
        assert_eq!(RuleKind::Malformed.signature_id(), 8_100_012);
    }
}
