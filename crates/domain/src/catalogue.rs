//! The scope catalogue (issue 16, first step): the vocabulary of what apps may do, as data.
//! Each scope has a name, a bit, a consent label and description, an optional resource
//! category and kind (for the permission grid), aliases, and whether it carries Buzz spend;
//! presets are named unions; one scope is always granted. The default catalogue is exactly
//! Civitai's (seed 003, [`Scope::FLAGS`] and [`Scope::PRESETS`]); an operator's catalogue
//! is checked here before a node starts ([`Catalogue::new`]).
//!
//! Not wired yet: parsing, discovery, consent and the client API still read the fixed
//! [`Scope`] tables (docs/domain.md, "Scopes"). Bits go up to 62 so operator scopes fit
//! beside Civitai's 25 without moving any of them.

use serde::Deserialize;

use crate::scope::Scope;

/// The highest bit a scope may use (63 bits in all).
pub const MAX_BIT: u8 = 62;

/// What a scope lets an app do to its resource category (a column of the permission grid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeKind {
    Read,
    Write,
    Delete,
}

/// Whether a scope lets an app spend the user's Buzz (SPEC 6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuzzSpend {
    /// Spends nothing.
    #[default]
    None,
    /// Spends within the consent's caps and the balance (Civitai's `AIServicesWrite`).
    Capped,
    /// Spends within the balance only (Civitai's `BountiesWrite`).
    BalanceOnly,
}

/// One scope as an operator declares it (a `[[scopes]]` table of the configuration file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeDef {
    pub name: String,
    pub bit: u8,
    /// The line on the consent page.
    pub label: String,
    #[serde(default)]
    pub description: String,
    /// The resource it is about (`Models`, `Media`, …), for the permission grid.
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub kind: Option<ScopeKind>,
    /// Other names a request may use for it.
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub buzz: BuzzSpend,
    /// Listed for completeness but not grantable yet (Civitai's `SocialTip`).
    #[serde(default)]
    pub reserved: bool,
}

/// A named union of scopes (a `[[presets]]` table).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetDef {
    pub name: String,
    pub label: String,
    /// Scope names (or aliases) it unites.
    pub scopes: Vec<String>,
}

/// Why a catalogue was refused at start; each names the scope or preset at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    #[error("the scope catalogue is empty")]
    Empty,
    #[error("scope `{name}`: bit {bit} is out of range (0 to {MAX_BIT})")]
    BitOutOfRange { name: String, bit: u8 },
    #[error("scopes `{first}` and `{second}` both use bit {bit}")]
    DuplicateBit {
        bit: u8,
        first: String,
        second: String,
    },
    #[error(
        "the name `{0}` is declared twice (names, aliases and presets share one namespace, case-insensitively)"
    )]
    DuplicateName(String),
    #[error("`{0}` is not a valid scope or preset name (letters, digits, `_`, `-`, `.`, `:`)")]
    BadName(String),
    #[error("preset `{preset}` names unknown scope `{scope}`")]
    UnknownInPreset { preset: String, scope: String },
    #[error("the always-granted scope `{0}` is not in the catalogue")]
    UnknownAlwaysGranted(String),
}

/// A checked catalogue: names unique (case-insensitively, aliases and presets included),
/// bits unique and in range, presets naming only known scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    scopes: Vec<ScopeDef>,
    presets: Vec<(PresetDef, u64)>,
    always_granted: u64,
}

impl Catalogue {
    /// Checks `scopes` and `presets` and builds the catalogue; `always_granted` names the
    /// scope every grant includes.
    pub fn new(
        scopes: Vec<ScopeDef>,
        presets: Vec<PresetDef>,
        always_granted: &str,
    ) -> Result<Catalogue, CatalogueError> {
        if scopes.is_empty() {
            return Err(CatalogueError::Empty);
        }
        let mut names: Vec<String> = Vec::new();
        let mut claim = |name: &str| {
            if !valid_name(name) {
                return Err(CatalogueError::BadName(name.to_owned()));
            }
            let lower = name.to_ascii_lowercase();
            if names.contains(&lower) {
                return Err(CatalogueError::DuplicateName(name.to_owned()));
            }
            names.push(lower);
            Ok(())
        };
        for (i, s) in scopes.iter().enumerate() {
            if s.bit > MAX_BIT {
                return Err(CatalogueError::BitOutOfRange {
                    name: s.name.clone(),
                    bit: s.bit,
                });
            }
            if let Some(first) = scopes[..i].iter().find(|o| o.bit == s.bit) {
                return Err(CatalogueError::DuplicateBit {
                    bit: s.bit,
                    first: first.name.clone(),
                    second: s.name.clone(),
                });
            }
            claim(&s.name)?;
            for a in &s.aliases {
                claim(a)?;
            }
        }
        let mut checked = Vec::with_capacity(presets.len());
        for p in presets {
            claim(&p.name)?;
            let mut bits = 0u64;
            for name in &p.scopes {
                let s = find(&scopes, name).ok_or_else(|| CatalogueError::UnknownInPreset {
                    preset: p.name.clone(),
                    scope: name.clone(),
                })?;
                bits |= 1 << s.bit;
            }
            checked.push((p, bits));
        }
        let always = find(&scopes, always_granted)
            .ok_or_else(|| CatalogueError::UnknownAlwaysGranted(always_granted.to_owned()))?
            .bit;
        Ok(Catalogue {
            scopes,
            presets: checked,
            always_granted: 1 << always,
        })
    }

    /// Civitai's catalogue (seed 003): the 25 flags with their labels, categories and kinds,
    /// the four presets, `UserRead` always granted, `AIServicesWrite` spending within caps,
    /// `BountiesWrite` within the balance, `SocialTip` reserved.
    pub fn civitai() -> Catalogue {
        let scopes = Scope::FLAGS
            .iter()
            .map(|f| {
                let bit = u8::try_from(f.scope.bits().trailing_zeros()).unwrap_or(MAX_BIT);
                let (category, kind) = split_name(f.name);
                ScopeDef {
                    name: f.name.to_owned(),
                    bit,
                    label: f.label.to_owned(),
                    description: String::new(),
                    category: Some(category.to_owned()),
                    kind,
                    aliases: Vec::new(),
                    buzz: match f.scope {
                        Scope::AI_SERVICES_WRITE => BuzzSpend::Capped,
                        Scope::BOUNTIES_WRITE => BuzzSpend::BalanceOnly,
                        _ => BuzzSpend::None,
                    },
                    reserved: f.scope == Scope::SOCIAL_TIP,
                }
            })
            .collect();
        let presets = Scope::PRESETS
            .iter()
            .map(|p| PresetDef {
                name: p.name.to_owned(),
                label: p.label.to_owned(),
                scopes: p.scope.names().iter().map(|n| (*n).to_owned()).collect(),
            })
            .collect();
        Catalogue::new(scopes, presets, "UserRead").expect("seed 003 is a valid catalogue")
    }

    /// This catalogue with `scopes` and `presets` added, checked as a whole;
    /// `always_granted` replaces the always-granted scope when given.
    pub fn extended(
        &self,
        scopes: Vec<ScopeDef>,
        presets: Vec<PresetDef>,
        always_granted: Option<&str>,
    ) -> Result<Catalogue, CatalogueError> {
        let current = self
            .scopes
            .iter()
            .find(|s| self.always_granted == 1 << s.bit)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let mut all = self.scopes.clone();
        all.extend(scopes);
        let mut named: Vec<PresetDef> = self.presets.iter().map(|(p, _)| p.clone()).collect();
        named.extend(presets);
        Catalogue::new(all, named, always_granted.unwrap_or(&current))
    }

    pub fn scopes(&self) -> &[ScopeDef] {
        &self.scopes
    }

    /// The presets with their masks.
    pub fn presets(&self) -> impl Iterator<Item = (&PresetDef, u64)> {
        self.presets.iter().map(|(p, bits)| (p, *bits))
    }

    /// The mask every grant includes.
    pub fn always_granted(&self) -> u64 {
        self.always_granted
    }

    /// Every declared bit.
    pub fn all(&self) -> u64 {
        self.scopes.iter().fold(0, |acc, s| acc | 1 << s.bit)
    }

    /// The mask a name stands for: a scope, one of its aliases, or a preset (any case).
    pub fn lookup(&self, name: &str) -> Option<u64> {
        find(&self.scopes, name).map(|s| 1 << s.bit).or_else(|| {
            self.presets
                .iter()
                .find(|(p, _)| p.name.eq_ignore_ascii_case(name))
                .map(|(_, bits)| *bits)
        })
    }

    /// The scope names of `bits`, in bit order.
    pub fn names(&self, bits: u64) -> Vec<&str> {
        let mut found: Vec<&ScopeDef> = self
            .scopes
            .iter()
            .filter(|s| bits & (1 << s.bit) != 0)
            .collect();
        found.sort_by_key(|s| s.bit);
        found.into_iter().map(|s| s.name.as_str()).collect()
    }
}

/// The scope `name` names (by its name or an alias, any case).
fn find<'a>(scopes: &'a [ScopeDef], name: &str) -> Option<&'a ScopeDef> {
    scopes.iter().find(|s| {
        s.name.eq_ignore_ascii_case(name) || s.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

/// `ModelsRead` → (`Models`, Read); a name without a kind suffix is its own category.
fn split_name(name: &str) -> (&str, Option<ScopeKind>) {
    for (suffix, kind) in [
        ("Read", ScopeKind::Read),
        ("Write", ScopeKind::Write),
        ("Delete", ScopeKind::Delete),
    ] {
        if let Some(category) = name.strip_suffix(suffix) {
            return (category, Some(kind));
        }
    }
    (name, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, bit: u8) -> ScopeDef {
        ScopeDef {
            name: name.into(),
            bit,
            label: format!("{name} label"),
            description: String::new(),
            category: None,
            kind: None,
            aliases: vec![],
            buzz: BuzzSpend::None,
            reserved: false,
        }
    }

    fn preset(name: &str, scopes: &[&str]) -> PresetDef {
        PresetDef {
            name: name.into(),
            label: name.into(),
            scopes: scopes.iter().map(|s| (*s).into()).collect(),
        }
    }

    #[test]
    fn the_default_catalogue_is_exactly_seed_003() {
        let c = Catalogue::civitai();
        assert_eq!(c.scopes().len(), 25);
        for f in Scope::FLAGS {
            assert_eq!(
                c.lookup(f.name),
                Some(u64::from(f.scope.bits())),
                "{}",
                f.name
            );
            let d = c.scopes().iter().find(|s| s.name == f.name).unwrap();
            assert_eq!(d.label, f.label);
        }
        for p in Scope::PRESETS {
            assert_eq!(
                c.lookup(p.name),
                Some(u64::from(p.scope.bits())),
                "{}",
                p.name
            );
        }
        assert_eq!(c.lookup("readonly"), Some(10_701_093), "any case");
        assert_eq!(c.all(), u64::from(Scope::FULL.bits()));
        assert_eq!(c.always_granted(), 1);
        let buzz = |n: &str| c.scopes().iter().find(|s| s.name == n).unwrap().buzz;
        assert_eq!(buzz("AIServicesWrite"), BuzzSpend::Capped);
        assert_eq!(buzz("BountiesWrite"), BuzzSpend::BalanceOnly);
        assert_eq!(buzz("ModelsRead"), BuzzSpend::None);
        let models = c
            .scopes()
            .iter()
            .find(|s| s.name == "ModelsDelete")
            .unwrap();
        assert_eq!(
            (models.category.as_deref(), models.kind),
            (Some("Models"), Some(ScopeKind::Delete))
        );
        assert!(
            c.scopes()
                .iter()
                .find(|s| s.name == "SocialTip")
                .unwrap()
                .reserved
        );
        assert_eq!(c.names(114_689), Scope::AI_SERVICES.names());
    }

    #[test]
    fn an_operator_catalogue_with_aliases_and_high_bits() {
        let mut profile = def("profile", 0);
        profile.aliases = vec!["UserRead".into()];
        let mut generations = def("generations", 40);
        generations.buzz = BuzzSpend::Capped;
        let c = Catalogue::new(
            vec![profile, generations, def("characters", 62)],
            vec![preset(
                "everything",
                &["profile", "GENERATIONS", "characters"],
            )],
            "profile",
        )
        .unwrap();
        assert_eq!(c.lookup("userread"), Some(1), "an alias, any case");
        assert_eq!(c.lookup("generations"), Some(1 << 40));
        assert_eq!(c.lookup("everything"), Some(1 | 1 << 40 | 1 << 62));
        assert_eq!(
            c.names(1 << 62 | 1),
            vec!["profile", "characters"],
            "in bit order"
        );
        assert_eq!(c.lookup("unknown"), None);
    }

    #[test]
    fn civitai_extended_keeps_every_civitai_value() {
        let mut generations = def("generations", 40);
        generations.aliases = vec!["gen".into()];
        let c = Catalogue::civitai()
            .extended(
                vec![generations],
                vec![preset("Studio", &["gen", "ModelsRead"])],
                None,
            )
            .unwrap();
        assert_eq!(c.lookup("AIServices"), Some(114_689));
        assert_eq!(c.lookup("gen"), Some(1 << 40));
        assert_eq!(c.lookup("studio"), Some(1 << 40 | 4));
        assert_eq!(c.always_granted(), 1);
        let clash = Catalogue::civitai().extended(vec![def("profile", 3)], vec![], None);
        assert_eq!(
            clash.unwrap_err().to_string(),
            "scopes `ModelsWrite` and `profile` both use bit 3"
        );
    }

    #[test]
    fn a_bad_catalogue_is_refused_with_a_message_that_names_the_problem() {
        let bad = |scopes: Vec<ScopeDef>, presets: Vec<PresetDef>, always: &str| {
            Catalogue::new(scopes, presets, always)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            bad(vec![def("a", 1), def("b", 1)], vec![], "a"),
            "scopes `a` and `b` both use bit 1"
        );
        assert!(bad(vec![def("a", 1), def("A", 2)], vec![], "a").contains("`A` is declared twice"));
        let mut shadow = def("b", 2);
        shadow.aliases = vec!["a".into()];
        assert!(bad(vec![def("a", 1), shadow], vec![], "a").contains("`a` is declared twice"));
        assert!(
            bad(vec![def("a", 1)], vec![preset("a", &[])], "a").contains("`a` is declared twice"),
            "a preset may not shadow a scope"
        );
        assert_eq!(
            bad(vec![def("a", 1)], vec![preset("p", &["nope"])], "a"),
            "preset `p` names unknown scope `nope`"
        );
        assert_eq!(
            bad(vec![def("a", 63)], vec![], "a"),
            "scope `a`: bit 63 is out of range (0 to 62)"
        );
        assert_eq!(
            bad(vec![def("a", 1)], vec![], "b"),
            "the always-granted scope `b` is not in the catalogue"
        );
        assert!(bad(vec![def("has space", 1)], vec![], "a").contains("not a valid"));
        assert_eq!(bad(vec![], vec![], "a"), "the scope catalogue is empty");
    }

    #[test]
    fn scope_tables_read_from_configuration_reject_unknown_fields() {
        let ok: ScopeDef = serde_json::from_value(serde_json::json!({
            "name": "generations", "bit": 40, "label": "Generate images",
            "buzz": "capped", "kind": "write", "category": "Generations"
        }))
        .unwrap();
        assert_eq!(
            (ok.buzz, ok.kind),
            (BuzzSpend::Capped, Some(ScopeKind::Write))
        );
        let typo = serde_json::from_value::<ScopeDef>(serde_json::json!({
            "name": "x", "bit": 1, "label": "x", "bits": 2
        }));
        assert!(typo.is_err());
    }
}
