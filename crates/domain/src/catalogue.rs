//! The scope catalogue: the vocabulary of what apps may do, as data (docs/scopes.md).
//! Each scope has a name, a bit, a consent label and description, an optional resource
//! category and kind (for the permission grid), aliases, and whether it carries Buzz spend;
//! presets are named unions; one scope is always granted. The default catalogue is exactly
//! Civitai's (seed 003, [`Scope::FLAGS`] and [`Scope::PRESETS`]); an operator's catalogue
//! is checked here before a node starts ([`Catalogue::new`]).
//!
//! Everything that knows scopes by name reads it: request parsing ([`Catalogue::parse`],
//! [`Catalogue::parse_request`]), ceiling trimming (the always-granted scope), discovery,
//! consent lines, the `insufficient_scope` description ([`Need`]), the client API and the
//! Buzz spend rules ([`Catalogue::need_spend`]). Bits go up to 62 so operator scopes fit
//! beside Civitai's 25 without moving any of them; the wire form stays the decimal mask.

use std::collections::HashMap;

use serde::Deserialize;

use crate::scope::{OidcScopes, RequestedScope, Scope, ScopeError, ScopeValue};

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
    #[error("the account scope `{0}` is not a scope, alias or preset of the catalogue")]
    UnknownAccountScope(String),
}

/// A checked catalogue: names unique (case-insensitively, aliases and presets included),
/// bits unique and in range, presets naming only known scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    /// In bit order.
    scopes: Vec<ScopeDef>,
    presets: Vec<(PresetDef, u64)>,
    always_granted: u64,
    /// What a personal API key needs to change its user's account (apps, Connected Apps,
    /// keys): `UserWrite` where the catalogue has it, else the always-granted scope, unless
    /// the operator names another ([`Catalogue::with_account_scope`]).
    account: u64,
    /// Lower-cased scope names, aliases and preset names → their mask.
    index: HashMap<String, u64>,
    all: u64,
    capped: u64,
    balance_only: u64,
}

/// One line of a consent page: a scope the request holds, as the catalogue labels it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeLine {
    pub scope: Scope,
    pub name: String,
    pub label: String,
    pub description: String,
}

/// What an endpoint asks of a token, with the name its `insufficient_scope` error gives
/// (`"Token does not have <name> scope"`). Built by the catalogue, so a platform's own names
/// appear in its errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    scope: Scope,
    any: bool,
    name: String,
}

impl Need {
    /// Any valid token will do.
    pub fn nothing() -> Need {
        Need {
            scope: Scope::NONE,
            any: false,
            name: String::new(),
        }
    }

    /// Every bit of `scope`, named `name` in the error.
    pub fn all(scope: Scope, name: impl Into<String>) -> Need {
        Need {
            scope,
            any: false,
            name: name.into(),
        }
    }

    /// At least one bit of `scope`; an empty `scope` is never met (the catalogue has no scope
    /// for it).
    pub fn any(scope: Scope, name: impl Into<String>) -> Need {
        Need {
            scope,
            any: true,
            name: name.into(),
        }
    }

    pub fn is_met_by(&self, held: Scope) -> bool {
        if self.any {
            held.intersects(self.scope)
        } else {
            held.contains(self.scope)
        }
    }

    /// The bits asked for (the `scope` of `WWW-Authenticate`).
    pub fn scope(&self) -> Scope {
        self.scope
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `Ok` when `held` meets it, else `insufficient_scope` naming it.
    pub fn check(&self, held: Scope) -> Result<(), crate::Error> {
        if self.is_met_by(held) {
            Ok(())
        } else {
            Err(crate::Error::InsufficientScope {
                required: self.scope,
                name: self.name.clone(),
            })
        }
    }
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
        let mut scopes = scopes;
        scopes.sort_by_key(|s| s.bit);
        let mut index = HashMap::new();
        let (mut all, mut capped, mut balance_only) = (0u64, 0u64, 0u64);
        for s in &scopes {
            let bit = 1u64 << s.bit;
            all |= bit;
            match s.buzz {
                BuzzSpend::Capped => capped |= bit,
                BuzzSpend::BalanceOnly => balance_only |= bit,
                BuzzSpend::None => {}
            }
            index.insert(s.name.to_ascii_lowercase(), bit);
            for a in &s.aliases {
                index.insert(a.to_ascii_lowercase(), bit);
            }
        }
        for (p, bits) in &checked {
            index.insert(p.name.to_ascii_lowercase(), *bits);
        }
        let account = index.get("userwrite").copied().unwrap_or(1u64 << always);
        Ok(Catalogue {
            scopes,
            presets: checked,
            always_granted: 1 << always,
            account,
            index,
            all,
            capped,
            balance_only,
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
                scopes: Scope::FLAGS
                    .iter()
                    .filter(|f| p.scope.contains(f.scope))
                    .map(|f| f.name.to_owned())
                    .collect(),
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
        let current = self.name_of(self.always_granted());
        let mut all = self.scopes.clone();
        all.extend(scopes);
        let mut named: Vec<PresetDef> = self.presets.iter().map(|(p, _)| p.clone()).collect();
        named.extend(presets);
        Catalogue::new(all, named, always_granted.unwrap_or(&current))
    }

    /// This catalogue with `name` (a scope, alias or preset) as what a personal API key needs
    /// to change its user's account.
    pub fn with_account_scope(mut self, name: &str) -> Result<Catalogue, CatalogueError> {
        let scope = self
            .lookup(name)
            .ok_or_else(|| CatalogueError::UnknownAccountScope(name.to_owned()))?;
        self.account = scope.bits();
        Ok(self)
    }

    /// What a personal API key needs to change its user's account.
    pub fn account_scope(&self) -> Scope {
        Scope::from_bits_truncate(self.account)
    }

    /// The need behind [`Catalogue::account_scope`].
    pub fn need_account_write(&self) -> Need {
        self.need(self.account_scope())
    }

    /// The scopes, in bit order.
    pub fn scopes(&self) -> &[ScopeDef] {
        &self.scopes
    }

    /// The presets with their masks.
    pub fn presets(&self) -> impl Iterator<Item = (&PresetDef, Scope)> {
        self.presets
            .iter()
            .map(|(p, bits)| (p, Scope::from_bits_truncate(*bits)))
    }

    /// The scope every grant includes.
    pub fn always_granted(&self) -> Scope {
        Scope::from_bits_truncate(self.always_granted)
    }

    /// Every declared bit (an app's default ceiling).
    pub fn all(&self) -> Scope {
        Scope::from_bits_truncate(self.all)
    }

    /// The scopes that spend Buzz within the consent's caps.
    pub fn capped(&self) -> Scope {
        Scope::from_bits_truncate(self.capped)
    }

    /// The mask a name stands for: a scope, one of its aliases, or a preset (any case).
    pub fn lookup(&self, name: &str) -> Option<Scope> {
        let hit = match self.index.get(name) {
            Some(bits) => Some(*bits),
            None => self.index.get(&name.to_ascii_lowercase()).copied(),
        };
        hit.map(Scope::from_bits_truncate)
    }

    /// `Ok(scope)` when every bit of it is declared, else the error a request gets.
    pub fn check(&self, scope: Scope) -> Result<Scope, ScopeError> {
        if scope.is_subset_of(self.all()) {
            Ok(scope)
        } else {
            Err(ScopeError::Undefined(self.all))
        }
    }

    /// A scope as a request or an owner writes it: a decimal mask, or names of scopes,
    /// aliases and presets (case-insensitive; spaces, commas and `+` separate).
    pub fn parse(&self, s: &str) -> Result<Scope, ScopeError> {
        let words: Vec<&str> = words(s).collect();
        self.parse_words(&words)
    }

    /// Names given one by one (a JSON array, seed 004's `scopes`).
    pub fn parse_names<S: AsRef<str>>(&self, names: &[S]) -> Result<Scope, ScopeError> {
        let mut out = Scope::NONE;
        for name in names {
            let name = name.as_ref().trim();
            out = out
                | self
                    .lookup(name)
                    .ok_or_else(|| ScopeError::UnknownName(name.to_owned()))?;
        }
        Ok(out)
    }

    /// A scope from a JSON body: a mask, a string of names (or a mask), or an array of names.
    pub fn resolve(&self, value: &ScopeValue) -> Result<Scope, ScopeError> {
        match value {
            ScopeValue::Mask(bits) => {
                self.check(Scope::from_bits(*bits).ok_or(ScopeError::OutOfRange)?)
            }
            ScopeValue::Text(s) => self.parse(s),
            ScopeValue::Names(names) => self.parse_names(names),
        }
    }

    /// A personal API key's scope when its creator names none: the `ReadOnly` preset where
    /// the catalogue has one, else every `read` scope, with the always-granted scope.
    pub fn default_key_scope(&self) -> Scope {
        let reads = self
            .scopes
            .iter()
            .filter(|s| s.kind == Some(ScopeKind::Read))
            .fold(Scope::NONE, |acc, s| {
                acc | Scope::from_bits_truncate(1 << s.bit)
            });
        self.lookup("ReadOnly").unwrap_or(reads) | self.always_granted()
    }

    /// Each word a name of the catalogue or a decimal mask (a form carries `"3 openid"` back,
    /// [`RequestedScope::to_form_value`]); the union of them all.
    fn parse_words(&self, words: &[&str]) -> Result<Scope, ScopeError> {
        if words.is_empty() {
            return Err(ScopeError::Empty);
        }
        let mut out = Scope::NONE;
        for word in words {
            out = out
                | match self.lookup(word) {
                    Some(scope) => scope,
                    None if word.starts_with(|c: char| c.is_ascii_digit() || c == '-') => {
                        self.check(Scope::from_decimal(word)?)?
                    }
                    None => return Err(ScopeError::UnknownName((*word).to_owned())),
                };
        }
        Ok(out)
    }

    /// A request's `scope`: the catalogue's names (or a decimal mask) and the OpenID Connect
    /// scopes, in any order (`openid profile 114689`). A word the catalogue defines is the
    /// catalogue's scope, and also the OIDC scope of that name if there is one (so a platform
    /// may call its profile scope `profile`). A request of OIDC scopes only asks for the
    /// always-granted scope; OIDC `profile` and `email` add it.
    pub fn parse_request(&self, s: &str) -> Result<RequestedScope, ScopeError> {
        let mut oidc = OidcScopes::NONE;
        let mut rest: Vec<&str> = Vec::new();
        for word in words(s) {
            let known = self.lookup(word).is_some();
            match OidcScopes::from_name(word) {
                Some(o) => {
                    oidc = oidc.union(o);
                    if known {
                        rest.push(word);
                    }
                }
                None => rest.push(word),
            }
        }
        let scope = match (rest.is_empty(), oidc.is_empty()) {
            (true, true) => return Err(ScopeError::Empty),
            (true, false) => self.always_granted(),
            (false, _) => self.parse_words(&rest)?,
        };
        let reads_profile = oidc.contains(OidcScopes::PROFILE) || oidc.contains(OidcScopes::EMAIL);
        Ok(RequestedScope {
            scope: if reads_profile {
                scope | self.always_granted()
            } else {
                scope
            },
            oidc,
        })
    }

    /// The permission part of a `scope` where OIDC scopes change nothing (refresh, client
    /// credentials, device start): `None` when the request names OIDC scopes only (it asks
    /// for no narrowing), else the catalogue's bits of the rest.
    pub fn parse_permissions(&self, s: &str) -> Result<Option<Scope>, ScopeError> {
        let rest: Vec<&str> = words(s)
            .filter(|w| OidcScopes::from_name(w).is_none() || self.lookup(w).is_some())
            .collect();
        if rest.is_empty() {
            return Ok(None);
        }
        self.parse_words(&rest).map(Some)
    }

    /// The declared scopes `scope` holds, in bit order.
    pub fn defs(&self, scope: Scope) -> impl Iterator<Item = &ScopeDef> {
        self.scopes
            .iter()
            .filter(move |s| scope.bits() & (1 << s.bit) != 0)
    }

    /// The consent lines of `scope`, in bit order.
    pub fn lines(&self, scope: Scope) -> Vec<ScopeLine> {
        self.defs(scope)
            .map(|s| ScopeLine {
                scope: Scope::from_bits_truncate(1 << s.bit),
                name: s.name.clone(),
                label: s.label.clone(),
                description: s.description.clone(),
            })
            .collect()
    }

    /// The scope names of `scope`, in bit order (undeclared bits have none).
    pub fn names(&self, scope: Scope) -> Vec<&str> {
        self.defs(scope).map(|s| s.name.as_str()).collect()
    }

    /// Space-separated names (`"UserRead BuzzRead"`).
    pub fn names_string(&self, scope: Scope) -> String {
        self.names(scope).join(" ")
    }

    /// The preset whose value this is exactly, if any.
    pub fn preset_of(&self, scope: Scope) -> Option<&PresetDef> {
        self.presets
            .iter()
            .find(|(_, bits)| *bits == scope.bits())
            .map(|(p, _)| p)
    }

    /// The name an error gives `scope`: the scope's name for one bit, a preset's for a
    /// preset, else the lowest declared bit's name.
    pub fn name_of(&self, scope: Scope) -> String {
        if let Some(p) = self.preset_of(scope)
            && scope.bits().count_ones() != 1
        {
            return p.name.clone();
        }
        self.defs(scope)
            .next()
            .map_or_else(|| scope.to_decimal_string(), |s| s.name.clone())
    }

    /// What a token needs for the endpoint that asks for `scope`, named for the error.
    pub fn need(&self, scope: Scope) -> Need {
        Need::all(scope, self.name_of(scope))
    }

    /// A scope known by its Civitai name (`BuzzRead`, `UserWrite`): an endpoint of Civitai's
    /// API asks for it. When this catalogue has no scope or alias of that name, no token
    /// meets it (an operator grants it by giving one of their scopes that alias).
    pub fn need_named(&self, name: &str) -> Need {
        match self.lookup(name) {
            Some(scope) => Need::all(scope, name),
            None => Need::any(Scope::NONE, name),
        }
    }

    /// Reading the user's profile (userinfo): the always-granted scope.
    pub fn need_profile(&self) -> Need {
        self.need(self.always_granted())
    }

    /// Spending the user's Buzz: a scope that spends within caps (`capped`) or within the
    /// balance only. Named after the first such scope, else Civitai's name.
    pub fn need_spend(&self, capped: bool) -> Need {
        let (bits, civitai) = if capped {
            (self.capped, "AIServicesWrite")
        } else {
            (self.balance_only, "BountiesWrite")
        };
        let scope = Scope::from_bits_truncate(bits);
        let name = self.defs(scope).next().map_or(civitai, |s| s.name.as_str());
        Need::any(scope, name)
    }

    /// `scopes_supported` of the discovery documents: each scope's bit as a decimal mask,
    /// every scope name in bit order, the presets, then the OpenID Connect scopes the
    /// catalogue does not name itself (a name it does is listed once, as its own).
    pub fn supported(&self) -> Vec<String> {
        let masks = self.scopes.iter().map(|s| (1u64 << s.bit).to_string());
        let names = self
            .scopes
            .iter()
            .map(|s| s.name.clone())
            .chain(self.presets.iter().map(|(p, _)| p.name.clone()));
        let oidc = OidcScopes::NAMED
            .iter()
            .filter(|(n, _)| self.lookup(n).is_none())
            .map(|(n, _)| (*n).to_owned());
        masks.chain(names).chain(oidc).collect()
    }
}

/// The words of a `scope` value: spaces, commas and `+` (a form-encoded space that arrived
/// undecoded) separate.
fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c.is_whitespace() || c == ',' || c == '+')
        .filter(|w| !w.is_empty())
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
/// One row of the permission grid on the app form: a resource category and its Read, Write
/// and Delete scopes (a cell is `None` where the catalogue has no such scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridRow<'a> {
    /// The category as people read it: `AIServices` → "AI Services".
    pub label: String,
    pub cells: [Option<&'a ScopeDef>; 3],
}

impl Catalogue {
    /// The permission grid: one row per category, in the order of each category's first bit,
    /// columns Read, Write and Delete; and, apart, the scopes that fit no column (an
    /// operator's scope declared without a `kind`).
    pub fn grid(&self) -> (Vec<GridRow<'_>>, Vec<&ScopeDef>) {
        let mut rows: Vec<(String, GridRow<'_>)> = Vec::new();
        let mut others = Vec::new();
        for def in &self.scopes {
            let (Some(category), Some(kind)) = (def.category.as_deref(), def.kind) else {
                others.push(def);
                continue;
            };
            let col = match kind {
                ScopeKind::Read => 0,
                ScopeKind::Write => 1,
                ScopeKind::Delete => 2,
            };
            let i = match rows.iter().position(|(c, _)| c == category) {
                Some(i) => i,
                None => {
                    rows.push((
                        category.to_owned(),
                        GridRow {
                            label: humanize(category),
                            cells: [None; 3],
                        },
                    ));
                    rows.len() - 1
                }
            };
            if rows[i].1.cells[col].is_none() {
                rows[i].1.cells[col] = Some(def);
            } else {
                others.push(def);
            }
        }
        (rows.into_iter().map(|(_, r)| r).collect(), others)
    }

    /// What an owner chose on a form: a preset (by name or label, any case) unless it is
    /// blank or `Custom`, else the ticked scope names; the always-granted scope either way.
    pub fn choose<S: AsRef<str>>(
        &self,
        preset: Option<&str>,
        ticked: &[S],
    ) -> Result<Scope, ScopeError> {
        let always = self.always_granted();
        match preset.map(str::trim) {
            Some(p) if !p.is_empty() && !p.eq_ignore_ascii_case("custom") => {
                let found = self.presets().find(|(def, _)| {
                    def.name.eq_ignore_ascii_case(p) || def.label.eq_ignore_ascii_case(p)
                });
                match found {
                    Some((_, scope)) => Ok(scope | always),
                    None => Err(ScopeError::UnknownName(p.to_owned())),
                }
            }
            _ => Ok(self.parse_names(ticked)? | always),
        }
    }
}

/// `AIServices` → "AI Services", `SocialTip` → "Social Tip": a space where a lower-case
/// letter meets an upper-case one, and before the last capital of a run that starts a word.
pub fn humanize(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && c.is_uppercase() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || (prev.is_uppercase() && next_lower) {
                out.push(' ');
            }
        }
        out.push(c);
    }
    out
}

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

    #[test]
    fn categories_read_as_words() {
        assert_eq!(humanize("AIServices"), "AI Services");
        assert_eq!(humanize("SocialTip"), "Social Tip");
        assert_eq!(humanize("User"), "User");
        assert_eq!(humanize("chat"), "chat");
    }

    #[test]
    fn the_grid_has_a_row_per_resource_and_a_column_per_kind() {
        let c = Catalogue::civitai();
        let (rows, others) = c.grid();
        let ai = rows
            .iter()
            .find(|r| r.label == "AI Services")
            .expect("AI row");
        assert_eq!(ai.cells[0].map(|d| d.name.as_str()), Some("AIServicesRead"));
        assert_eq!(
            ai.cells[1].map(|d| d.name.as_str()),
            Some("AIServicesWrite")
        );
        assert!(ai.cells[2].is_none());
        assert_eq!(rows[0].label, "User", "bit order");
        let in_grid: usize = rows.iter().map(|r| r.cells.iter().flatten().count()).sum();
        assert_eq!(
            in_grid + others.len(),
            c.scopes().len(),
            "every scope appears once"
        );
    }

    #[test]
    fn a_preset_wins_over_ticks_unless_custom() {
        let c = Catalogue::civitai();
        let ai = c.choose(Some("AI Services"), &["ModelsDelete"]).unwrap();
        assert_eq!(ai, Scope::AI_SERVICES | Scope::USER_READ);
        assert_eq!(c.choose(Some("aiservices"), &[] as &[&str]).unwrap(), ai);
        let custom = c.choose(Some("Custom"), &["ModelsRead"]).unwrap();
        assert_eq!(
            custom,
            Scope::MODELS_READ | Scope::USER_READ,
            "UserRead always"
        );
        assert_eq!(
            c.choose(None, &["ModelsRead"]).unwrap(),
            custom,
            "no preset is custom"
        );
        assert!(c.choose(Some("Everything"), &[] as &[&str]).is_err());
        assert!(c.choose(Some("Custom"), &["NoSuchScope"]).is_err());
    }

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
            assert_eq!(c.lookup(f.name), Some(f.scope), "{}", f.name);
            let d = c.scopes().iter().find(|s| s.name == f.name).unwrap();
            assert_eq!(d.label, f.label);
        }
        for p in Scope::PRESETS {
            assert_eq!(c.lookup(p.name), Some(p.scope), "{}", p.name);
            assert_eq!(c.preset_of(p.scope).unwrap().label, p.label);
        }
        assert_eq!(c.lookup("readonly"), Some(Scope::READ_ONLY), "any case");
        assert_eq!(c.all(), Scope::FULL);
        assert_eq!(c.always_granted(), Scope::USER_READ);
        assert_eq!(c.capped(), Scope::AI_SERVICES_WRITE);
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
        assert_eq!(
            c.names(Scope::AI_SERVICES),
            vec!["UserRead", "AIServicesRead", "AIServicesWrite", "BuzzRead"]
        );
        let supported = c.supported();
        assert_eq!(
            supported.len(),
            58,
            "25 masks, 25 names, 4 presets, 4 OIDC scopes"
        );
        for s in ["1", "16777216", "UserRead", "Full", "openid", "profile"] {
            assert!(supported.iter().any(|x| x == s), "{s}");
        }
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
        let bits = |b: u64| Scope::from_bits(b).unwrap();
        assert_eq!(c.lookup("userread"), Some(bits(1)), "an alias, any case");
        assert_eq!(c.lookup("generations"), Some(bits(1 << 40)));
        assert_eq!(c.lookup("everything"), Some(bits(1 | 1 << 40 | 1 << 62)));
        assert_eq!(
            c.names(bits(1 << 62 | 1)),
            vec!["profile", "characters"],
            "in bit order"
        );
        assert_eq!(c.capped(), bits(1 << 40));
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
        assert_eq!(c.lookup("AIServices"), Some(Scope::AI_SERVICES));
        assert_eq!(c.lookup("gen").map(Scope::bits), Some(1 << 40));
        assert_eq!(c.lookup("studio").map(Scope::bits), Some(1 << 40 | 4));
        assert_eq!(c.always_granted(), Scope::USER_READ);
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

    fn serika() -> Catalogue {
        let mut profile = def("profile", 0);
        profile.label = "Access your profile (ID, username, avatar)".into();
        let mut generations = def("generations", 1);
        generations.buzz = BuzzSpend::Capped;
        Catalogue::new(
            vec![profile, generations, def("characters", 2)],
            vec![],
            "profile",
        )
        .unwrap()
    }

    #[test]
    fn names_parse_case_insensitively_with_presets_and_masks() {
        let c = Catalogue::civitai();
        assert_eq!(
            c.parse("userread buzzread").unwrap(),
            Scope::USER_READ | Scope::BUZZ_READ
        );
        assert_eq!(c.parse("AIServices").unwrap(), Scope::AI_SERVICES);
        assert_eq!(
            c.parse("readonly MODELSWRITE").unwrap(),
            Scope::READ_ONLY | Scope::MODELS_WRITE
        );
        assert_eq!(c.parse("full").unwrap(), Scope::FULL);
        assert_eq!(
            c.parse("UserRead+BuzzRead").unwrap(),
            Scope::USER_READ | Scope::BUZZ_READ
        );
        assert_eq!(c.parse(" 33554431 ").unwrap(), Scope::FULL);
        assert_eq!(c.parse("-5"), Err(ScopeError::Negative));
        assert_eq!(c.parse("12abc"), Err(ScopeError::Malformed));
        assert_eq!(c.parse(""), Err(ScopeError::Empty));
        assert_eq!(
            c.parse_names(&["UserRead", " BuzzRead "]).unwrap(),
            Scope::USER_READ | Scope::BUZZ_READ
        );
    }

    #[test]
    fn bits_outside_the_catalogue_are_refused_with_civitai_s_message() {
        let c = Catalogue::civitai();
        for bad in ["33554432", "134217727", "4294967296"] {
            let e = c.parse(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                "scope has bits outside the defined flags (maximum 33554431)"
            );
        }
        assert_eq!(c.parse(&"9".repeat(400)), Err(ScopeError::OutOfRange));
        assert_eq!(
            c.check(Scope::from_bits(1 << 40).unwrap()),
            Err(ScopeError::Undefined(33_554_431))
        );
    }

    #[test]
    fn unknown_names_are_refused_with_the_name() {
        let c = Catalogue::civitai();
        assert_eq!(
            c.parse("UserRead openid"),
            Err(ScopeError::UnknownName("openid".into()))
        );
        assert_eq!(
            serika().parse("profile generation"),
            Err(ScopeError::UnknownName("generation".into()))
        );
    }

    #[test]
    fn oidc_scopes_mix_with_civitai_names_and_masks() {
        let c = Catalogue::civitai();
        let r = c.parse_request("openid profile email").unwrap();
        assert_eq!(r.scope, Scope::USER_READ);
        assert_eq!(r.oidc.names(), vec!["openid", "profile", "email"]);
        let r = c.parse_request("openid AIServices offline_access").unwrap();
        assert_eq!(r.scope, Scope::AI_SERVICES);
        assert!(
            r.oidc
                .contains(OidcScopes::OPENID | OidcScopes::OFFLINE_ACCESS)
        );
        let r = c.parse_request("114689 OpenID").unwrap();
        assert_eq!((r.scope, r.oidc), (Scope::AI_SERVICES, OidcScopes::OPENID));
        let r = c.parse_request("openid").unwrap();
        assert_eq!(
            r.scope,
            Scope::USER_READ,
            "openid alone still reads the user"
        );
        let r = c.parse_request("BuzzRead").unwrap();
        assert_eq!((r.scope, r.oidc), (Scope::BUZZ_READ, OidcScopes::NONE));
        assert_eq!(
            c.parse_request("openid nonsense").unwrap_err(),
            ScopeError::UnknownName("nonsense".into())
        );
        assert_eq!(c.parse_request("  ").unwrap_err(), ScopeError::Empty);
        let r = c.parse_request("openid email 65536").unwrap();
        assert_eq!(r.to_form_value(), "65537 openid email");
        assert_eq!(c.parse_request(&r.to_form_value()).unwrap(), r);
        assert_eq!(c.parse_permissions("openid offline_access"), Ok(None));
        assert_eq!(
            c.parse_permissions("openid BuzzRead"),
            Ok(Some(Scope::BUZZ_READ))
        );
    }

    #[test]
    fn a_platform_s_own_names_win_over_oidc_names_and_keep_their_claims() {
        let c = serika();
        let r = c.parse_request("profile generations").unwrap();
        assert_eq!(r.scope.bits(), 0b011);
        assert_eq!(
            r.oidc,
            OidcScopes::PROFILE,
            "`profile` also releases the profile claims"
        );
        assert_eq!(
            c.parse_permissions("profile").unwrap().map(Scope::bits),
            Some(1)
        );
        assert_eq!(c.names_string(r.scope), "profile generations");
        let supported = c.supported();
        assert_eq!(
            supported.iter().filter(|s| *s == "profile").count(),
            1,
            "a platform's `profile` is listed once, as its own: {supported:?}"
        );
        assert_eq!(c.parse("3").unwrap().bits(), 3);
        let r = c.parse_request("profile generations").unwrap();
        assert_eq!(
            c.parse_request(&r.to_form_value()).unwrap(),
            r,
            "the consent form's value reads back"
        );
        assert_eq!(r.to_form_value(), "3 profile");
        assert_eq!(c.parse("8"), Err(ScopeError::Undefined(7)));
    }

    #[test]
    fn needs_name_the_platform_s_scope_in_the_error() {
        let c = Catalogue::civitai();
        let e = c
            .need(Scope::BUZZ_READ)
            .check(Scope::USER_READ)
            .unwrap_err();
        assert_eq!(e.description(), "Token does not have BuzzRead scope");
        assert!(c.need_named("BuzzRead").is_met_by(Scope::AI_SERVICES));
        assert!(c.need_spend(true).is_met_by(Scope::AI_SERVICES));
        assert!(!c.need_spend(false).is_met_by(Scope::AI_SERVICES));
        assert_eq!(c.need_spend(false).name(), "BountiesWrite");
        assert_eq!(c.name_of(Scope::AI_SERVICES), "AIServices");
        assert_eq!(c.name_of(Scope::BUZZ_READ), "BuzzRead");
        assert_eq!(
            c.name_of(Scope::BUZZ_READ | Scope::VAULT_READ),
            "BuzzRead",
            "the lowest bit"
        );
        assert!(Need::nothing().is_met_by(Scope::NONE));

        let s = serika();
        let spend = s.need_spend(true);
        assert_eq!(spend.name(), "generations");
        assert!(spend.is_met_by(s.parse("generations").unwrap()));
        let e = spend.check(s.parse("profile").unwrap()).unwrap_err();
        assert_eq!(e.description(), "Token does not have generations scope");
        let buzz = s.need_named("BuzzRead");
        assert!(
            !buzz.is_met_by(s.all()),
            "no scope of that name: nothing meets it"
        );
        assert_eq!(s.need_profile().name(), "profile");
        assert_eq!(
            s.account_scope(),
            s.always_granted(),
            "no UserWrite: the always-granted scope"
        );
        let s = s.with_account_scope("characters").unwrap();
        assert_eq!(s.need_account_write().name(), "characters");
        assert_eq!(
            serika().with_account_scope("nope").unwrap_err().to_string(),
            "the account scope `nope` is not a scope, alias or preset of the catalogue"
        );
        assert_eq!(c.account_scope(), Scope::USER_WRITE);
    }

    #[test]
    fn the_docs_table_is_the_default_catalogue() {
        let doc = include_str!("../../../docs/scopes.md");
        let c = Catalogue::civitai();
        let rows: Vec<Vec<&str>> = doc
            .lines()
            .filter(|l| {
                l.starts_with("| ")
                    && l.split('|')
                        .nth(1)
                        .is_some_and(|b| b.trim().parse::<u8>().is_ok())
            })
            .map(|l| l.split('|').map(str::trim).collect())
            .collect();
        assert_eq!(rows.len(), c.scopes().len(), "one row per scope");
        for (row, s) in rows.iter().zip(c.scopes()) {
            let buzz = match s.buzz {
                BuzzSpend::None => "",
                BuzzSpend::Capped => "capped",
                BuzzSpend::BalanceOnly => "balance only",
            };
            let value = (1u64 << s.bit).to_string();
            assert_eq!(
                row[1..6],
                [
                    s.bit.to_string().as_str(),
                    value.as_str(),
                    s.name.as_str(),
                    s.label.as_str(),
                    buzz
                ],
                "docs/scopes.md row for {}",
                s.name
            );
        }
        for (p, scope) in c.presets() {
            let line = format!("| {} | {} | {} |", p.name, p.label, scope.bits());
            assert!(doc.contains(&line), "docs/scopes.md lacks `{line}`");
        }
    }
}
