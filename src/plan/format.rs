//! Plan output: `text` for terminals, `markdown` for a pull-request comment,
//! `json` for machines (its schema is `schema/plan.schema.json`).

use std::fmt::Write;

use super::{Plan, PlatformAction, PlatformPlan, SiteAction, SitePlan, Suspended};
use crate::compat::{PackageVerdict, Severity};
use crate::text;

/// ANSI colours, used only when asked (a TTY without `NO_COLOR`).
#[derive(Debug, Clone, Copy)]
pub struct Style {
    color: bool,
}

impl Style {
    /// Colours on or off.
    pub fn new(color: bool) -> Self {
        Style { color }
    }
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
}

fn site_sign(a: SiteAction) -> &'static str {
    match a {
        SiteAction::Create | SiteAction::Clone => "+",
        SiteAction::Delete => "-",
        SiteAction::Noop => " ",
        _ => "~",
    }
}

fn where_to(s: &SitePlan) -> String {
    let ep = |e: &super::Endpoint| match &e.server {
        Some(srv) => format!("{} on {} (server {srv})", e.domain, e.platform),
        None => format!("{} on {}", e.domain, e.platform),
    };
    match (&s.from, &s.to) {
        (Some(f), Some(t)) if f == t => match (&s.action, &s.config) {
            // Neither platform nor domain changes: the database moves.
            (SiteAction::Migrate, Some(c)) => {
                format!("{} (database to server {})", ep(t), c.db_server)
            }
            _ => ep(t),
        },
        (Some(f), Some(t)) => format!("{} -> {}", ep(f), ep(t)),
        (None, Some(t)) => match &s.clone_from {
            Some(src) => format!("{} (copy of {src})", ep(t)),
            None => ep(t),
        },
        (Some(f), None) => ep(f),
        (None, None) => String::new(),
    }
}

/// The one-line summary: what changes, and what is blocked.
pub fn summary_line(plan: &Plan) -> String {
    let mut parts = Vec::new();
    for a in PlatformAction::ALL {
        let n = plan.summary.platforms.get(a.as_str()).copied().unwrap_or(0);
        if n > 0 && a != PlatformAction::Noop {
            parts.push(format!("{n} platform {}", a.as_str()));
        }
    }
    for a in SiteAction::ALL {
        let n = plan.summary.sites.get(a.as_str()).copied().unwrap_or(0);
        if n > 0 && a != SiteAction::Noop {
            parts.push(format!("{n} {}", a.as_str()));
        }
    }
    if parts.is_empty() {
        parts.push("nothing to do".into());
    }
    let mut s = format!("Plan: {}", parts.join(", "));
    if plan.summary.blocked > 0 {
        let _ = write!(s, "; {} blocked", plan.summary.blocked);
    }
    s
}

/// The rollout's waves in order with their site tasks, e.g.
/// `Waves: canary 1, early 3, rest 10`; none without `rollout:`.
pub fn waves_line(plan: &Plan) -> Option<String> {
    if plan.summary.waves.is_empty() {
        return None;
    }
    let parts: Vec<String> = plan
        .summary
        .waves
        .iter()
        .map(|w| format!("{} {}", text::line(&w.name), w.sites))
        .collect();
    Some(format!("Waves: {}", parts.join(", ")))
}

fn verdict_line(v: &PackageVerdict, st: &Style) -> String {
    let said = text::line(&v.describe()).into_owned();
    match v.severity {
        Severity::Error => st.red(&said),
        Severity::Warning => st.yellow(&said),
        Severity::Ok => said,
    }
}

fn colored_diff(diff: &str, st: &Style, indent: &str) -> String {
    let mut out = String::new();
    for line in diff.lines() {
        let l = if line.starts_with("+++") || line.starts_with("---") {
            st.bold(line)
        } else if line.starts_with('+') {
            st.green(line)
        } else if line.starts_with('-') {
            st.red(line)
        } else if line.starts_with("@@") {
            st.dim(line)
        } else {
            line.to_string()
        };
        let _ = writeln!(out, "{indent}{l}");
    }
    out
}

/// The plan for a terminal. Sites and platforms with nothing to do and
/// nothing to say are left out unless `show_noop` (`--show-noop`): at fleet
/// scale they would bury the changes. Every name and message is cleaned of
/// control characters: they come from files a pull request may edit.
pub fn text(plan: &Plan, st: &Style, show_noop: bool) -> String {
    let mut out = String::new();
    let shown_platforms: Vec<_> = plan
        .platforms
        .iter()
        .filter(|p| {
            show_noop
                || p.action != PlatformAction::Noop
                || p.blocked
                || !p.warnings.is_empty()
                || p.suspended.is_some()
        })
        .collect();
    if !shown_platforms.is_empty() {
        let _ = writeln!(out, "{}", st.bold("Platforms"));
        for p in shown_platforms {
            let sign = match p.action {
                PlatformAction::Build => st.green("+"),
                PlatformAction::Delete => st.red("-"),
                PlatformAction::Noop => " ".into(),
            };
            let blocked = if p.blocked {
                st.red(" BLOCKED")
            } else {
                String::new()
            };
            let src = p
                .source
                .as_deref()
                .map(|s| format!(" ({})", text::line(s)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {sign} {:<20} {:<8}{src}{blocked}",
                p.name.as_str(),
                p.action.as_str()
            );
            suspension(&mut out, p.suspended.as_ref(), st);
            messages(&mut out, &p.errors, &p.warnings, st);
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", st.bold("Sites"));
    if plan.sites.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    let mut hidden = 0;
    for s in &plan.sites {
        let quiet = s.action == SiteAction::Noop
            && !s.blocked
            && s.errors.is_empty()
            && s.warnings.is_empty()
            && s.suspended.is_none();
        if quiet && !show_noop {
            hidden += 1;
            continue;
        }
        let sign = match s.action {
            SiteAction::Create | SiteAction::Clone => st.green(site_sign(s.action)),
            SiteAction::Delete => st.red(site_sign(s.action)),
            a => st.yellow(site_sign(a)),
        };
        let blocked = if s.blocked {
            st.red(" BLOCKED")
        } else {
            String::new()
        };
        let action = if s.unmanaged {
            "unmanaged"
        } else {
            s.action.as_str()
        };
        let wave = s
            .wave
            .as_deref()
            .map(|w| format!(" [wave {}]", text::line(w)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {sign} {:<20} {:<15} {}{wave}{blocked}",
            s.name.as_str(),
            action,
            text::line(&where_to(s))
        );
        if quiet {
            continue;
        }
        suspension(&mut out, s.suspended.as_ref(), st);
        messages(&mut out, &s.errors, &s.warnings, st);
        if s.action == SiteAction::Noop {
            continue;
        }
        for v in s.packages.iter().filter(|v| v.severity == Severity::Ok) {
            let _ = writeln!(out, "      {}", verdict_line(v, st));
        }
        if !s.diff.is_empty() {
            out.push_str(&colored_diff(&text::block(&s.diff), st, "      "));
        }
    }
    if hidden > 0 {
        let _ = writeln!(
            out,
            "  {}",
            st.dim(&format!(
                "({hidden} site(s) with nothing to do not shown; --show-noop lists them)"
            ))
        );
    }
    out.push('\n');
    if let Some(w) = waves_line(plan) {
        let _ = writeln!(out, "{w}");
    }
    let line = summary_line(plan);
    let _ = writeln!(
        out,
        "{}",
        if plan.blocked() {
            st.red(&line)
        } else {
            st.bold(&line)
        }
    );
    out
}

/// Why a site or platform is left alone, on a line of its own.
fn suspension(out: &mut String, s: Option<&Suspended>, st: &Style) {
    if let Some(s) = s {
        let _ = writeln!(out, "      {}", st.yellow(&text::line(&s.describe())));
    }
}

/// The errors and warnings of a site or platform, one per line.
fn messages(out: &mut String, errors: &[String], warnings: &[String], st: &Style) {
    for e in errors {
        let _ = writeln!(out, "      {} {}", st.red("error:"), text::line(e));
    }
    for w in warnings {
        let _ = writeln!(out, "      {} {}", st.yellow("warning:"), text::line(w));
    }
}

/// GitHub refuses a comment over 65,536 characters: the markdown plan
/// stays under this many (spec section 6).
pub const MARKDOWN_LIMIT: usize = 65_000;
/// Room kept at the end for the note on what was left out.
const NOTE_ROOM: usize = 600;
/// The longest message shown in markdown, in characters; the JSON plan has
/// every message whole.
const MESSAGE_MAX: usize = 500;
/// The reasons shown per site in the blocked list.
const REASONS_MAX: usize = 5;

/// Markdown being written under a character budget.
struct Budget {
    out: String,
    used: usize,
    limit: usize,
}

impl Budget {
    /// Adds `piece` when it fits, and says whether it did.
    fn fits(&mut self, piece: &str) -> bool {
        let n = piece.chars().count();
        if self.used + n > self.limit {
            return false;
        }
        self.used += n;
        self.out.push_str(piece);
        true
    }
}

/// One message as markdown text: clipped, then escaped.
fn md_message(m: &str) -> String {
    text::md(&text::clip(m, MESSAGE_MAX)).into_owned()
}

/// The plan as a pull-request comment, under [`MARKDOWN_LIMIT`]
/// characters: the summary table, the changed platforms, the blocked sites
/// with their reasons, then a collapsible section per changed site (the
/// blocked ones first) for as many as fit, and a note on what was left
/// out. Everything from the inventory and the status files is escaped.
pub fn markdown(plan: &Plan) -> String {
    markdown_within(plan, MARKDOWN_LIMIT)
}

fn markdown_within(plan: &Plan, limit: usize) -> String {
    let mut b = Budget {
        out: String::new(),
        used: 0,
        limit: limit.saturating_sub(NOTE_ROOM),
    };
    // The header and summary table are a few lines whatever the fleet:
    // always there.
    let mut head = String::new();
    let verdict = if plan.blocked() {
        "⛔ **blocked**"
    } else if plan.has_changes() {
        "📝 changes"
    } else {
        "✅ nothing to do"
    };
    let commit = plan
        .inventory
        .commit
        .as_deref()
        .map(|c| format!(" at `{}`", text::md(&text::clip(c, 12))))
        .unwrap_or_default();
    let _ = writeln!(head, "## hoist plan{commit}: {verdict}\n");
    let _ = writeln!(
        head,
        "{} ({} mode{})\n",
        text::md(&summary_line(plan)),
        match plan.mode {
            super::Mode::Live => "live",
            super::Mode::Offline => "offline",
        },
        if plan.strict { ", strict" } else { "" }
    );
    let _ = writeln!(head, "| | action | count |\n|---|---|---:|");
    for a in PlatformAction::ALL {
        let n = plan.summary.platforms.get(a.as_str()).copied().unwrap_or(0);
        if n > 0 {
            let _ = writeln!(head, "| platforms | `{}` | {n} |", a.as_str());
        }
    }
    for a in SiteAction::ALL {
        let n = plan.summary.sites.get(a.as_str()).copied().unwrap_or(0);
        if n > 0 {
            let _ = writeln!(head, "| sites | `{}` | {n} |", a.as_str());
        }
    }
    let _ = writeln!(head, "| | **blocked** | {} |\n", plan.summary.blocked);
    if !plan.summary.waves.is_empty() {
        let _ = writeln!(head, "| wave | sites |\n|---|---:|");
        for w in &plan.summary.waves {
            let _ = writeln!(head, "| {} | {} |", text::md(&w.name), w.sites);
        }
        head.push('\n');
    }
    b.used += head.chars().count();
    b.out.push_str(&head);

    // Blocked first, in each list; otherwise in name order.
    let mut platforms: Vec<_> = plan
        .platforms
        .iter()
        .filter(|p| p.action != PlatformAction::Noop || p.blocked)
        .collect();
    platforms.sort_by_key(|p| !p.blocked);
    let mut platforms_left = 0;
    if !platforms.is_empty() {
        b.fits("### Platforms\n\n");
        for p in &platforms {
            if !b.fits(&platform_item(p)) {
                platforms_left += 1;
            }
        }
        b.fits("\n");
    }

    let blocked: Vec<&SitePlan> = plan.sites.iter().filter(|s| s.blocked).collect();
    let mut blocked_left = 0;
    if !blocked.is_empty() {
        b.fits(&format!("### ⛔ Blocked sites ({})\n\n", blocked.len()));
        for s in &blocked {
            if !b.fits(&blocked_item(s)) {
                blocked_left += 1;
            }
        }
        b.fits("\n");
    }

    // What hoist leaves alone, with who and why: sites and platforms.
    let suspended: Vec<(&str, &str, &Suspended)> = plan
        .platforms
        .iter()
        .filter_map(|p| Some(("platform ", p.name.as_str(), p.suspended.as_ref()?)))
        .chain(
            plan.sites
                .iter()
                .filter_map(|s| Some(("", s.name.as_str(), s.suspended.as_ref()?))),
        )
        .collect();
    let mut suspended_left = 0;
    if !suspended.is_empty() {
        b.fits(&format!("### ⏸️ Suspended ({})\n\n", suspended.len()));
        for (kind, name, s) in &suspended {
            let item = format!(
                "- {kind}**{}**: {}\n",
                text::md(name),
                md_message(&s.describe())
            );
            if !b.fits(&item) {
                suspended_left += 1;
            }
        }
        b.fits("\n");
    }

    let mut sections: Vec<&SitePlan> = plan
        .sites
        .iter()
        .filter(|s| s.action != SiteAction::Noop || s.blocked)
        .collect();
    sections.sort_by_key(|s| !s.blocked);
    let mut sections_left = 0;
    for s in &sections {
        if !b.fits(&site_section(s)) {
            sections_left += 1;
        }
    }

    let mut left = Vec::new();
    for (n, of, what) in [
        (sections_left, sections.len(), "site sections"),
        (blocked_left, blocked.len(), "blocked sites"),
        (suspended_left, suspended.len(), "suspended"),
        (platforms_left, platforms.len(), "platforms"),
    ] {
        if n > 0 {
            left.push(format!("{n} of {of} {what}"));
        }
    }
    let mut out = b.out;
    if !left.is_empty() {
        let _ = writeln!(
            out,
            "---\n\n**Left out** to keep this comment under {} characters: {}. The JSON plan (`hoist plan --format json`, or `--out FILE`) has everything.",
            MARKDOWN_LIMIT,
            left.join(", ")
        );
    }
    out
}

fn platform_item(p: &PlatformPlan) -> String {
    let mark = if p.blocked { "⛔" } else { "➕" };
    let mut item = format!(
        "- {mark} platform **{}**: `{}`{}\n",
        text::md(p.name.as_str()),
        p.action.as_str(),
        p.source
            .as_deref()
            .map(|s| format!(" from {}", md_message(s)))
            .unwrap_or_default()
    );
    for e in &p.errors {
        let _ = writeln!(item, "  - error: {}", md_message(e));
    }
    item
}

fn blocked_item(s: &SitePlan) -> String {
    let mut item = format!(
        "- **{}** `{}` {}\n",
        text::md(s.name.as_str()),
        s.action.as_str(),
        text::md(&where_to(s))
    );
    // Under strict, warnings are what blocks a site without errors.
    let reasons = if s.errors.is_empty() {
        &s.warnings
    } else {
        &s.errors
    };
    for r in reasons.iter().take(REASONS_MAX) {
        let _ = writeln!(item, "  - {}", md_message(r));
    }
    if reasons.len() > REASONS_MAX {
        let _ = writeln!(item, "  - and {} more", reasons.len() - REASONS_MAX);
    }
    item
}

fn site_section(s: &SitePlan) -> String {
    let mut out = String::new();
    let mark = if s.blocked {
        "⛔"
    } else if !s.warnings.is_empty() {
        "⚠️"
    } else {
        "✅"
    };
    let wave = s
        .wave
        .as_deref()
        .map(|w| format!(" (wave {})", text::md(w)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "<details><summary>{mark} <b>{}</b>: <code>{}</code> {}{wave}</summary>\n",
        text::md(s.name.as_str()),
        s.action.as_str(),
        text::md(&where_to(s))
    );
    for e in &s.errors {
        let _ = writeln!(out, "- ⛔ {}", md_message(e));
    }
    for w in &s.warnings {
        let _ = writeln!(out, "- ⚠️ {}", md_message(w));
    }
    if !s.errors.is_empty() || !s.warnings.is_empty() {
        out.push('\n');
    }
    if !s.packages.is_empty() {
        let _ = writeln!(out, "| package | verdict | site schema | target schema | version | updates |\n|---|---|---:|---:|---|---|");
        for v in &s.packages {
            let ver = match (&v.current_version, &v.target_version) {
                (Some(a), Some(b)) if a != b => format!("{a} → {b}"),
                (_, Some(b)) => b.to_string(),
                (Some(a), None) => a.to_string(),
                (None, None) => String::new(),
            };
            let opt = |o: Option<u32>| o.map(|n| n.to_string()).unwrap_or_else(|| "–".into());
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} | {} | {} |",
                text::md(v.name.as_str()),
                v.verdict.as_str(),
                opt(v.site_schema),
                opt(v.target_schema),
                text::md(&ver),
                v.pending
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        out.push('\n');
    }
    if !s.diff.is_empty() {
        out.push_str(&text::md_fence(&s.diff, "diff"));
        out.push('\n');
    }
    let _ = writeln!(out, "</details>\n");
    out
}

/// The plan as pretty JSON.
pub fn json(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).expect("plans serialize");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{Domain, Name};
    use crate::plan::{Endpoint, InventoryRef, Mode, Summary};

    fn site(i: usize, action: SiteAction, blocked: bool, error: &str) -> SitePlan {
        let ep = |p: &str| {
            Some(Endpoint {
                platform: Name::new(p).unwrap(),
                domain: Domain::new(&format!("s-{i:04}.example.com")).unwrap(),
                server: None,
            })
        };
        SitePlan {
            name: Name::new(&format!("s-{i:04}")).unwrap(),
            action,
            blocked,
            from: ep("old"),
            to: ep("new"),
            clone_from: None,
            unmanaged: false,
            packages: vec![],
            errors: if error.is_empty() {
                vec![]
            } else {
                vec![error.to_string()]
            },
            warnings: vec![],
            diff: "-platform: old\n+platform: new\n".repeat(20),
            config: None,
            observed: None,
            suspended: None,
            wave: None,
        }
    }

    fn plan(sites: Vec<SitePlan>) -> Plan {
        let mut summary = Summary::default();
        for s in &sites {
            *summary.sites.entry(s.action.as_str().into()).or_default() += 1;
            summary.blocked += s.blocked as usize;
            summary.changes += (s.action != SiteAction::Noop) as usize;
        }
        Plan {
            format_version: crate::plan::FORMAT_VERSION,
            inventory: InventoryRef {
                path: ".".into(),
                commit: None,
            },
            mode: Mode::Offline,
            strict: false,
            selected: vec![],
            observed: String::new(),
            summary,
            platforms: vec![],
            sites,
        }
    }

    #[test]
    fn markdown_keeps_its_limit_even_when_the_blocked_list_overflows() {
        let huge = format!("<b>{}</b> @team", "x".repeat(100_000));
        let sites: Vec<SitePlan> = (0..2_000)
            .map(|i| {
                site(
                    i,
                    SiteAction::Migrate,
                    i % 2 == 0,
                    if i % 2 == 0 { &huge } else { "" },
                )
            })
            .collect();
        let md = markdown(&plan(sites));
        assert!(md.chars().count() <= MARKDOWN_LIMIT);
        assert!(md.contains("### ⛔ Blocked sites (1000)"));
        let note = md.lines().last().unwrap();
        assert!(
            note.contains("of 2000 site sections") && note.contains("of 1000 blocked sites"),
            "{note}"
        );
        // each message is clipped, and escaped
        assert!(md.contains(&format!("&lt;b&gt;{}…", "x".repeat(MESSAGE_MAX - 4))));
        assert!(!md.contains("<b>x"));
    }

    #[test]
    fn a_small_plan_leaves_nothing_out() {
        let md = markdown(&plan(vec![
            site(1, SiteAction::Migrate, true, "no"),
            site(2, SiteAction::Migrate, false, ""),
            site(3, SiteAction::Noop, false, ""),
        ]));
        assert!(!md.contains("Left out"), "{md}");
        assert_eq!(md.matches("<details>").count(), 2, "noop has no section");
        let blocked = md.find("<b>s-0001</b>").unwrap();
        assert!(blocked < md.find("<b>s-0002</b>").unwrap(), "blocked first");
        // a tight limit cuts whole sections, deterministically
        let tight = markdown_within(
            &plan(vec![
                site(1, SiteAction::Migrate, false, ""),
                site(2, SiteAction::Migrate, false, ""),
            ]),
            2_200,
        );
        assert!(tight.chars().count() <= 2_200, "{}", tight.chars().count());
        assert!(tight.contains("1 of 2 site sections"), "{tight}");
    }

    #[test]
    fn text_shows_noop_sites_only_when_asked() {
        let p = plan(vec![
            site(1, SiteAction::Migrate, false, ""),
            site(2, SiteAction::Noop, false, ""),
            site(3, SiteAction::Noop, true, "why\x1b[2J"),
        ]);
        let st = Style::new(false);
        let quiet = text(&p, &st, false);
        assert!(
            quiet.contains("s-0001") && quiet.contains("s-0003"),
            "{quiet}"
        );
        assert!(!quiet.contains("s-0002"), "{quiet}");
        assert!(
            quiet.contains("(1 site(s) with nothing to do not shown"),
            "{quiet}"
        );
        assert!(
            quiet.contains("error: why[2J") && !quiet.contains('\x1b'),
            "{quiet}"
        );
        let all = text(&p, &st, true);
        assert!(
            all.contains("s-0002") && !all.contains("not shown"),
            "{all}"
        );
    }
}
