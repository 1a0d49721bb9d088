//! Plan output: `text` for terminals, `markdown` for a pull-request comment,
//! `json` for machines (its schema is `schema/plan.schema.json`).

use std::fmt::Write;

use super::{Plan, PlatformAction, SiteAction, SitePlan};
use crate::compat::{PackageVerdict, Severity};

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
    let ep = |e: &super::Endpoint| format!("{} on {}", e.domain, e.platform);
    match (&s.from, &s.to) {
        (Some(f), Some(t)) if f == t => ep(t),
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

fn verdict_line(v: &PackageVerdict, st: &Style) -> String {
    let text = v.describe();
    match v.severity {
        Severity::Error => st.red(&text),
        Severity::Warning => st.yellow(&text),
        Severity::Ok => text,
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

/// The plan for a terminal.
pub fn text(plan: &Plan, st: &Style) -> String {
    let mut out = String::new();
    let changed_platforms: Vec<_> = plan
        .platforms
        .iter()
        .filter(|p| p.action != PlatformAction::Noop || p.blocked || !p.warnings.is_empty())
        .collect();
    if !changed_platforms.is_empty() {
        let _ = writeln!(out, "{}", st.bold("Platforms"));
        for p in changed_platforms {
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
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {sign} {:<20} {:<8}{src}{blocked}",
                p.name.as_str(),
                p.action.as_str()
            );
            for e in &p.errors {
                let _ = writeln!(out, "      {} {e}", st.red("error:"));
            }
            for w in &p.warnings {
                let _ = writeln!(out, "      {} {w}", st.yellow("warning:"));
            }
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", st.bold("Sites"));
    if plan.sites.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for s in &plan.sites {
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
        let _ = writeln!(
            out,
            "  {sign} {:<20} {:<15} {}{blocked}",
            s.name.as_str(),
            action,
            where_to(s)
        );
        if s.action == SiteAction::Noop && s.errors.is_empty() && s.warnings.is_empty() {
            continue;
        }
        for e in &s.errors {
            let _ = writeln!(out, "      {} {e}", st.red("error:"));
        }
        for w in &s.warnings {
            let _ = writeln!(out, "      {} {w}", st.yellow("warning:"));
        }
        for v in s.packages.iter().filter(|v| v.severity == Severity::Ok) {
            let _ = writeln!(out, "      {}", verdict_line(v, st));
        }
        if !s.diff.is_empty() {
            out.push_str(&colored_diff(&s.diff, st, "      "));
        }
    }
    out.push('\n');
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

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The plan as a pull-request comment: a summary table, then a collapsible
/// section per changed site.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
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
        .map(|c| format!(" at `{}`", crate::names::prefix(c, 12)))
        .unwrap_or_default();
    let _ = writeln!(out, "## hoist plan{commit}: {verdict}\n");
    let _ = writeln!(
        out,
        "{} ({} mode{})\n",
        md_escape(&summary_line(plan)),
        match plan.mode {
            super::Mode::Live => "live",
            super::Mode::Offline => "offline",
        },
        if plan.strict { ", strict" } else { "" }
    );
    let _ = writeln!(out, "| | action | count |\n|---|---|---:|");
    for a in PlatformAction::ALL {
        let n = plan.summary.platforms.get(a.as_str()).copied().unwrap_or(0);
        if n > 0 {
            let _ = writeln!(out, "| platforms | `{}` | {n} |", a.as_str());
        }
    }
    for a in SiteAction::ALL {
        let n = plan.summary.sites.get(a.as_str()).copied().unwrap_or(0);
        if n > 0 {
            let _ = writeln!(out, "| sites | `{}` | {n} |", a.as_str());
        }
    }
    let _ = writeln!(out, "| | **blocked** | {} |\n", plan.summary.blocked);

    for p in plan
        .platforms
        .iter()
        .filter(|p| p.action != PlatformAction::Noop || p.blocked)
    {
        let mark = if p.blocked { "⛔" } else { "➕" };
        let _ = writeln!(
            out,
            "- {mark} platform **{}**: `{}`{}",
            p.name,
            p.action.as_str(),
            p.source
                .as_deref()
                .map(|s| format!(" from {}", md_escape(s)))
                .unwrap_or_default()
        );
        for e in &p.errors {
            let _ = writeln!(out, "  - error: {}", md_escape(e));
        }
    }
    if plan
        .platforms
        .iter()
        .any(|p| p.action != PlatformAction::Noop || p.blocked)
    {
        out.push('\n');
    }

    for s in plan
        .sites
        .iter()
        .filter(|s| s.action != SiteAction::Noop || s.blocked)
    {
        let mark = if s.blocked {
            "⛔"
        } else if !s.warnings.is_empty() {
            "⚠️"
        } else {
            "✅"
        };
        let _ = writeln!(
            out,
            "<details><summary>{mark} <b>{}</b>: <code>{}</code> {}</summary>\n",
            s.name,
            s.action.as_str(),
            md_escape(&where_to(s))
        );
        for e in &s.errors {
            let _ = writeln!(out, "- ⛔ {}", md_escape(e));
        }
        for w in &s.warnings {
            let _ = writeln!(out, "- ⚠️ {}", md_escape(w));
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
                    v.name,
                    v.verdict.as_str(),
                    opt(v.site_schema),
                    opt(v.target_schema),
                    ver,
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
            let _ = writeln!(out, "```diff\n{}```\n", s.diff);
        }
        let _ = writeln!(out, "</details>\n");
    }
    out
}

/// The plan as pretty JSON.
pub fn json(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).expect("plans serialize");
    s.push('\n');
    s
}
