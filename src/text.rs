//! Untrusted text made safe to show. Names, domains, messages, versions and
//! diffs come from the inventory and the status files, which a pull request
//! may edit: on a terminal they must not move the cursor, clear the screen,
//! open hyperlinks or reorder text, and in a pull-request comment they must
//! not render as markup or notify anyone. JSON output needs none of this
//! (serde escapes it exactly).
//!
//! One rule each: [`line()`] and [`block`] for terminals, [`md`] and
//! [`md_fence`] for markdown, [`clip`] to bound a message's length.

use std::borrow::Cow;
use std::fmt::Write;

/// A zero-width space: breaks `@mention`, `://` and `www.` for GitHub's
/// linkers without changing what a reader sees.
const ZWSP: char = '\u{200b}';

/// Characters a terminal acts on instead of showing: C0 controls, DEL, C1
/// controls (which include the 8-bit CSI and OSC), and the bidirectional
/// overrides, embeddings, isolates and marks that reorder what is shown.
pub fn is_control(c: char) -> bool {
    matches!(c,
        '\0'..='\x1f'
        | '\x7f'..='\u{9f}'
        | '\u{061c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

/// Cleans `s` with `keep` deciding what each control becomes (`None`:
/// dropped); borrows when there is nothing to clean, as for nearly all text.
fn clean(s: &str, keep: impl Fn(char) -> Option<char>) -> Cow<'_, str> {
    if !s.chars().any(|c| is_control(c) && keep(c) != Some(c)) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .filter_map(|c| if is_control(c) { keep(c) } else { Some(c) })
            .collect(),
    )
}

/// One line of terminal output: every control character dropped, and line
/// breaks and tabs made spaces (an embedded newline could forge a line of
/// the plan).
pub fn line(s: &str) -> Cow<'_, str> {
    clean(s, |c| matches!(c, '\n' | '\t').then_some(' '))
}

/// Several lines of terminal output (a diff, a log): line breaks and tabs
/// kept, every other control character dropped (a carriage return could
/// overwrite what is shown).
pub fn block(s: &str) -> Cow<'_, str> {
    clean(s, |c| matches!(c, '\n' | '\t').then_some(c))
}

/// At most `max` characters of `s`, with `…` when cut: one message may not
/// fill a pull-request comment.
pub fn clip(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((end, _)) => {
            let cut = s[..end]
                .char_indices()
                .nth(max.saturating_sub(1))
                .map_or(end, |(i, _)| i);
            Cow::Owned(format!("{}…", &s[..cut]))
        }
    }
}

/// Whether `c` is safe in markdown as it is.
fn md_plain(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            ' ' | '-' | '.' | ',' | '/' | '=' | '+' | '%' | '\'' | '?' | ';' | '→'
        )
}

/// Inline text for markdown and the HTML of a pull-request comment, shown
/// exactly as written and never as markup: `&`, `<`, `>` and `"` as
/// entities, markdown punctuation as numeric references (they work in text,
/// tables and HTML alike, and never as structure), control characters
/// dropped and line breaks made spaces, and a zero-width space after `@`
/// and inside `://` and `www.` so that nothing mentions, links or notifies.
pub fn md(s: &str) -> Cow<'_, str> {
    if s.chars().all(md_plain) && !s.to_ascii_lowercase().contains("www.") {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    for (i, c) in s.char_indices() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '|' | '~' | '$' | '!' | '#' | '^' => {
                let _ = write!(out, "&#{};", c as u32);
            }
            '@' => {
                out.push('@');
                out.push(ZWSP);
            }
            ':' => {
                out.push(':');
                if s[i + 1..].starts_with("//") {
                    out.push(ZWSP);
                }
            }
            '.' => {
                if s.get(i.saturating_sub(3)..i)
                    .is_some_and(|w| w.eq_ignore_ascii_case("www"))
                {
                    out.push(ZWSP);
                }
                out.push('.');
            }
            '\n' | '\t' | '\r' => out.push(' '),
            c if is_control(c) => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `content` as a fenced code block (`info` names its language): shown
/// verbatim, control characters dropped, behind a fence longer than any
/// run of backticks in it, so no line of it can close the block early.
pub fn md_fence(content: &str, info: &str) -> String {
    let content = block(content);
    let mut longest = 0;
    let mut run = 0;
    for c in content.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat((longest + 1).max(3));
    let newline = if content.ends_with('\n') || content.is_empty() {
        ""
    } else {
        "\n"
    };
    format!("{fence}{info}\n{content}{newline}{fence}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_lines_lose_every_control_and_line_break() {
        let hostile = "a\x1b[2Jb\x1b]8;;https://evil\x07c\u{9b}31m\u{202e}d\u{2066}e\x7f\r\nf\tg\0";
        let l = line(hostile);
        assert_eq!(l, "a[2Jb]8;;https://evilc31mde f g");
        assert!(!l.chars().any(is_control));
        assert!(matches!(line("plain text, ünïcödé"), Cow::Borrowed(_)));
    }

    #[test]
    fn terminal_blocks_keep_line_breaks_and_tabs_only() {
        assert_eq!(
            block("-a\x1b[1A\n+b\r\n\tc\u{85}\u{202d}"),
            "-a[1A\n+b\n\tc"
        );
        assert!(matches!(block("x\ny\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn every_c1_and_bidi_control_is_one() {
        for c in ('\u{80}'..='\u{9f}')
            .chain('\u{202a}'..='\u{202e}')
            .chain('\u{2066}'..='\u{2069}')
            .chain('\0'..='\x1f')
        {
            assert!(is_control(c), "{:x}", c as u32);
        }
        assert!(is_control('\x7f'));
        for c in ['a', ' ', 'é', '\u{a0}', '→', '⛔'] {
            assert!(!is_control(c), "{c}");
        }
    }

    #[test]
    fn clipping_counts_characters_and_marks_the_cut() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "ab…");
        assert_eq!(clip("ééééé", 4), "ééé…");
        assert_eq!(clip("ééééé", 4).chars().count(), 4);
        assert_eq!(clip("", 0), "");
    }

    #[test]
    fn markdown_text_renders_no_markup() {
        let hostile = "# Title\n## x @octocat [a](https://evil.example) <img src=x onerror=1> **b** `c` | d ~e~ $f$ \\g www.evil.example ![i](j)";
        let m = md(hostile);
        for raw in [
            "# ", "\n", "@o", "[", "](", "<img", "**", "`", "|", "~", "$", "\\", "://", "www.",
            "![",
        ] {
            assert!(!m.contains(raw), "{raw:?} in {m}");
        }
        assert!(m.contains("&lt;img src=x onerror=1&gt;"), "{m}");
        assert!(m.contains("@\u{200b}octocat"), "{m}");
        assert!(m.contains("https:\u{200b}//evil.example"), "{m}");
        assert!(m.contains("www\u{200b}.evil.example"), "{m}");
        assert!(m.contains("&amp;") || !hostile.contains('&'));
        // what names, domains and versions are made of stays as it is
        for plain in ["acme.example.com", "shop-2-0", "1.1.0 → 2.0.0", "4, 5"] {
            assert!(matches!(md(plain), Cow::Borrowed(_)), "{plain}");
        }
        assert_eq!(md("a & b\u{202e}\x1b"), "a &amp; b");
        assert_eq!(md("WWW.x"), "WWW\u{200b}.x");
    }

    #[test]
    fn fences_outlast_any_backtick_run() {
        let f = md_fence("a\n```\n````` x\n", "diff");
        assert!(
            f.starts_with("``````diff\na\n```\n````` x\n``````\n"),
            "{f}"
        );
        let short = md_fence("no newline at end", "diff");
        assert_eq!(short, "```diff\nno newline at end\n```\n");
        let ctl = md_fence("a\x1b[31m\r\n", "");
        assert_eq!(ctl, "```\na[31m\n```\n");
    }
}
