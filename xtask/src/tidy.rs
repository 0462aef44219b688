//! `cargo xtask tidy`: house rules that no compiler checks, over the files git tracks.
//!
//! - **No issue numbers in comments.** A comment says why the code is so; which issue or
//!   change made it so belongs in the commit message. Checked in the comments of Rust
//!   (`//`, `///`, `//!`, `/* */`), Python (`#` and docstrings) and TOML (`#`) files: the
//!   word "issue" or "issues" (any case) followed by a number, with or without `#`, and a
//!   number after `#` in parentheses. String literals are output, not comments, and are
//!   not checked; neither is Markdown (docs may cite issues), nor a reference into another
//!   project (`owner/repo#N`).
//! - **No import cycles** between a crate's top-level modules (`cycles.rs`).
//! - **A line cap per file.** A source file (`.rs`, `.py`) holds at most [`SOURCE_CAP`]
//!   lines, a test file (under `tests/`, `loom-tests/` or `fuzz_targets/`, or named
//!   `test_*.py` / `conftest.py`) at most [`TEST_CAP`]. A Rust file's unit tests at its
//!   bottom (from a line `#[cfg(test)]`) do not count: tests sit next to what they test.
//!   [`LONG_FILES`] lists the files allowed past the cap, each with its reason; an entry
//!   that is no longer needed fails too, so the list only shrinks.
//!
//! The files are those git tracks plus the untracked ones it does not ignore (so a new
//! file is checked before its first commit). Every finding is printed as
//! `path:line: message`, and the step fails if there is one.

use crate::cmd::{Cmd, Failure, Result};
use crate::cycles;
use crate::workspace::Workspace;

/// Lines a source file may hold (a Rust file's `#[cfg(test)]` part not counted).
pub(crate) const SOURCE_CAP: usize = 600;

/// Lines a test file may hold.
pub(crate) const TEST_CAP: usize = 1000;

/// Files allowed past their cap, and why.
const LONG_FILES: &[(&str, &str)] = &[
    (
        "core/src/cell.rs",
        "the completion cell: its state bits, transition diagram and the ordering argument \
         next to each atomic operation read as one story",
    ),
    (
        "pytests/src/mutants.rs",
        "the mutation tests' stepped futures, streams and executors, one per planted bug, \
         kept side by side so that test_mutants.py and plant_bugs.py map onto one file",
    ),
];

/// The `tidy` step: check every tracked file, print each finding, fail if any.
pub(crate) fn run(ws: &Workspace) -> Result {
    let listing = Cmd::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .dir(ws.root())
        .probe("tidy")
        .ok_or_else(|| Failure::new("`git ls-files` failed: tidy checks the files git knows"))?;
    let mut findings = Vec::new();
    let mut long = Vec::new();
    let mut crate_files: Vec<Vec<(String, String)>> = vec![Vec::new(); cycles::CRATES.len()];
    for path in listing.split('\0').filter(|path| !path.is_empty()) {
        let Some(kind) = Kind::of(path) else {
            continue;
        };
        // A tracked file deleted in the working tree, or not text: nothing to check.
        let Ok(source) = std::fs::read_to_string(ws.path(path)) else {
            continue;
        };
        findings.extend(check_file(path, kind, &source, &mut long));
        if kind == Kind::Rust {
            for (files, src) in crate_files.iter_mut().zip(cycles::CRATES) {
                if let Some(inside) = path.strip_prefix(src).and_then(|p| p.strip_prefix('/')) {
                    files.push((inside.to_string(), source.clone()));
                }
            }
        }
    }
    findings.extend(stale_allowances(&long));
    for (files, src) in crate_files.iter().zip(cycles::CRATES) {
        findings.extend(cycles::cycles(src, files));
    }
    if findings.is_empty() {
        println!(
            "==> tidy: no issue numbers in comments, every file within its line cap, no \
             import cycles between modules"
        );
        return Ok(());
    }
    for finding in &findings {
        eprintln!("{finding}");
    }
    Err(Failure::new(format!(
        "{} tidy finding(s) above (rules: xtask/src/tidy.rs)",
        findings.len()
    )))
}

/// How a file's comments are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Rust,
    Python,
    Toml,
}

impl Kind {
    fn of(path: &str) -> Option<Self> {
        let name = path.rsplit('/').next().unwrap_or(path);
        match name.rsplit_once('.')?.1 {
            "rs" => Some(Kind::Rust),
            "py" | "pyi" => Some(Kind::Python),
            "toml" => Some(Kind::Toml),
            _ => None,
        }
    }
}

/// The findings for one file; a file past its cap but allowed is pushed onto `long`.
fn check_file(path: &str, kind: Kind, source: &str, long: &mut Vec<String>) -> Vec<String> {
    let comments = match kind {
        Kind::Rust => rust_comments(source),
        Kind::Python => hash_comments(source, true),
        Kind::Toml => hash_comments(source, false),
    };
    let mut findings: Vec<String> = comments
        .iter()
        .filter_map(|comment| {
            let cited = cited_issue(&comment.text)?;
            Some(format!(
                "{path}:{}: a comment cites an issue (\"{cited}\"): say why the code is so; \
                 the history goes in the commit message",
                comment.line
            ))
        })
        .collect();
    if kind != Kind::Toml
        && let Some(excess) = over_cap(path, kind, source)
    {
        if LONG_FILES.iter().any(|(allowed, _)| *allowed == path) {
            long.push(path.to_owned());
        } else {
            findings.push(excess);
        }
    }
    findings
}

/// The allowances of [`LONG_FILES`] that nothing needed (`long`: the files that did).
fn stale_allowances(long: &[String]) -> Vec<String> {
    LONG_FILES
        .iter()
        .filter(|(path, _)| !long.iter().any(|needed| needed == path))
        .map(|(path, _)| {
            format!(
                "xtask/src/tidy.rs: {path} is in LONG_FILES but is within its cap (or gone): \
                 remove its entry"
            )
        })
        .collect()
}

/// Whether `path` is a test file (cap [`TEST_CAP`]) rather than source ([`SOURCE_CAP`]).
fn is_test(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    path.split('/')
        .any(|part| matches!(part, "tests" | "loom-tests" | "fuzz_targets"))
        || (name.starts_with("test_") && name.ends_with(".py"))
        || name == "conftest.py"
}

/// A finding if `source` runs past its cap, pointing at the first line beyond it.
fn over_cap(path: &str, kind: Kind, source: &str) -> Option<String> {
    let (cap, what) = if is_test(path) {
        (TEST_CAP, "a test file")
    } else {
        (SOURCE_CAP, "a source file")
    };
    let lines = source.lines();
    let counted = match kind {
        Kind::Rust => lines.take_while(|line| *line != "#[cfg(test)]").count(),
        _ => lines.count(),
    };
    (counted > cap).then(|| {
        format!(
            "{path}:{}: {counted} lines, past the cap of {cap} for {what}{}: split it by \
             concept (or, if it must stay whole, add it to LONG_FILES in xtask/src/tidy.rs \
             with the reason)",
            cap + 1,
            if kind == Kind::Rust {
                " (unit tests from `#[cfg(test)]` not counted)"
            } else {
                ""
            }
        )
    })
}

/// One line of a comment.
#[derive(Debug, PartialEq, Eq)]
struct Comment {
    /// 1-based.
    line: usize,
    text: String,
}

/// The issue citation in `text`, if any ("issue", "issues" and a number, with or without
/// `#`; a number after `#` in parentheses), in its own spelling.
fn cited_issue(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    for (start, _) in lower.match_indices("issue") {
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        let mut end = start + "issue".len();
        if bytes.get(end) == Some(&b's') {
            end += 1;
        }
        while bytes.get(end) == Some(&b' ') {
            end += 1;
        }
        if bytes.get(end) == Some(&b'#') {
            end += 1;
        }
        let digits = bytes[end..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 {
            return Some(text[start..end + digits].to_owned());
        }
    }
    for (start, _) in lower.match_indices("(#") {
        let digits = bytes[start + 2..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 && bytes.get(start + 2 + digits) == Some(&b')') {
            return Some(text[start..start + 3 + digits].to_owned());
        }
    }
    None
}

/// The comments of a Rust file, a line at a time; string and char literals skipped.
fn rust_comments(source: &str) -> Vec<Comment> {
    let chars: Vec<char> = source.chars().collect();
    let mut comments = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let mut text = String::new();
    // Nesting depth of block comments (Rust's nest).
    let mut block = 0;
    let mut flush = |line: usize, text: &mut String| {
        if !text.trim().is_empty() {
            comments.push(Comment {
                line,
                text: std::mem::take(text),
            });
        }
        text.clear();
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if block > 0 {
            match (c, next) {
                ('*', Some('/')) => {
                    block -= 1;
                    i += 2;
                    if block == 0 {
                        flush(line, &mut text);
                    }
                    continue;
                }
                ('/', Some('*')) => {
                    block += 1;
                    i += 2;
                    continue;
                }
                ('\n', _) => {
                    flush(line, &mut text);
                    line += 1;
                }
                _ => text.push(c),
            }
            i += 1;
            continue;
        }
        match (c, next) {
            ('/', Some('/')) => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(chars.len(), |n| i + n);
                text.extend(&chars[i + 2..end]);
                flush(line, &mut text);
                i = end;
            }
            ('/', Some('*')) => {
                block = 1;
                i += 2;
            }
            ('"', _) => i = skip_quoted(&chars, i + 1, '"', &mut line),
            ('r', Some('"' | '#')) if !ident_before(&chars, i) => {
                let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
                if chars.get(i + 1 + hashes) == Some(&'"') {
                    i = skip_raw(&chars, i + 2 + hashes, hashes, &mut line);
                } else {
                    i += 1;
                }
            }
            ('\'', _) => i = skip_char_literal(&chars, i),
            ('\n', _) => {
                line += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    comments
}

/// Whether the char before `i` continues an identifier (so an `r` there is not a raw
/// string's prefix; `br"..."` is, through its `b`).
fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && {
        let before = chars[i - 1];
        (before.is_alphanumeric() || before == '_') && before != 'b'
    }
}

/// Past the closing `quote` of a string whose body starts at `i` (backslash escapes).
fn skip_quoted(chars: &[char], mut i: usize, quote: char, line: &mut usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if chars.get(i + 1) == Some(&'\n') {
                    *line += 1;
                }
                i += 2;
                continue;
            }
            '\n' => *line += 1,
            c if c == quote => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Past the end (`"` and `hashes` `#`s) of a raw string whose body starts at `i`.
fn skip_raw(chars: &[char], mut i: usize, hashes: usize, line: &mut usize) -> usize {
    while i < chars.len() {
        if chars[i] == '\n' {
            *line += 1;
        }
        if chars[i] == '"'
            && chars[i + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return i + 1 + hashes;
        }
        i += 1;
    }
    i
}

/// Past a char literal at `i` (`'x'`, `'\n'`, `'\u{..}'`), or just past the `'` of a
/// lifetime or label.
fn skip_char_literal(chars: &[char], i: usize) -> usize {
    match (chars.get(i + 1), chars.get(i + 2)) {
        (Some('\\'), _) => chars[i + 2..]
            .iter()
            .position(|&c| c == '\'')
            .map_or(chars.len(), |n| i + 2 + n + 1),
        (Some(_), Some('\'')) => i + 3,
        _ => i + 1,
    }
}

/// The `#` comments of a Python or TOML file, a line at a time; string literals skipped,
/// except (with `docstrings`) a string that is a statement of its own, which Python uses
/// as documentation.
fn hash_comments(source: &str, docstrings: bool) -> Vec<Comment> {
    let chars: Vec<char> = source.chars().collect();
    let mut comments = Vec::new();
    let mut line = 1;
    let mut depth = 0usize;
    // Only white space (and a string prefix) so far on this line.
    let mut line_start = true;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '#' => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(chars.len(), |n| i + n);
                let text: String = chars[i + 1..end].iter().collect();
                comments.push(Comment { line, text });
                i = end;
            }
            '"' | '\'' => {
                let triple = chars.get(i + 1) == Some(&c) && chars.get(i + 2) == Some(&c);
                let statement = docstrings && line_start && depth == 0;
                let start_line = line;
                let body_start = if triple { i + 3 } else { i + 1 };
                let end = skip_python_string(&chars, body_start, c, triple, &mut line);
                if statement {
                    let body: String = chars[body_start..end.min(chars.len())].iter().collect();
                    for (n, text) in body.lines().enumerate() {
                        comments.push(Comment {
                            line: start_line + n,
                            text: text.to_owned(),
                        });
                    }
                }
                line_start = false;
                i = end;
            }
            '\n' => {
                line += 1;
                line_start = true;
                i += 1;
            }
            '(' | '[' | '{' => {
                depth += 1;
                line_start = false;
                i += 1;
            }
            ')' | ']' | '}' => {
                depth = depth.saturating_sub(1);
                line_start = false;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            // A string prefix (r, b, f, u and pairs) keeps the line's start.
            'r' | 'b' | 'f' | 'u' | 'R' | 'B' | 'F' | 'U'
                if matches!(chars.get(i + 1), Some('"' | '\''))
                    || matches!(chars.get(i + 2), Some('"' | '\''))
                        && chars[i + 1].is_ascii_alphabetic() =>
            {
                i += 1;
            }
            _ => {
                line_start = false;
                i += 1;
            }
        }
    }
    comments
}

/// Past the end of a Python string whose body starts at `i`; the body ends before the
/// returned index minus the closing quote(s).
fn skip_python_string(
    chars: &[char],
    mut i: usize,
    quote: char,
    triple: bool,
    line: &mut usize,
) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if chars.get(i + 1) == Some(&'\n') {
                    *line += 1;
                }
                i += 2;
                continue;
            }
            '\n' => {
                *line += 1;
                // An unterminated single-quoted string ends at the line (a syntax error;
                // stop there rather than swallow the file).
                if !triple {
                    return i;
                }
            }
            c if c == quote => {
                if !triple {
                    return i + 1;
                }
                if chars.get(i + 1) == Some(&quote) && chars.get(i + 2) == Some(&quote) {
                    return i + 3;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(comments: &[Comment]) -> Vec<(usize, &str)> {
        comments.iter().map(|c| (c.line, c.text.trim())).collect()
    }

    #[test]
    fn issue_citations_are_found_in_every_spelling() {
        for text in [
            "see issue 12",
            "Issue #3 says so",
            "one of issues 11/12",
            "Issue 6's targets",
            "fixed (#12) here",
            "ISSUE#7",
        ] {
            assert!(cited_issue(text).is_some(), "{text}");
        }
    }

    #[test]
    fn other_numbers_and_references_are_not_citations() {
        for text in [
            "the issue is the ordering",
            "tissue 3",
            "tokio-rs/loom#166 and #392",
            "step 2 of 3",
            "(#[test] in a comment)",
            "issues: 2 of them",
        ] {
            assert_eq!(cited_issue(text), None, "{text}");
        }
    }

    #[test]
    fn rust_comments_are_found_and_strings_skipped() {
        let source = "//! top (issue 1)\nfn f<'a>(x: &'a str) -> char {\n    \
                      let s = \"issue 2 // not a comment\";\n    \
                      let r = r#\"issue 3 \"quoted\" // still not\"#;\n    \
                      /* block\n       issue 4 */\n    let c = '\"'; // after a char, issue 5\n    \
                      'x'\n}\n/// doc line\n";
        let comments = rust_comments(source);
        assert_eq!(
            texts(&comments),
            vec![
                (1, "! top (issue 1)"),
                (5, "block"),
                (6, "issue 4"),
                (7, "after a char, issue 5"),
                (10, "/ doc line"),
            ]
        );
        let cited: Vec<usize> = comments
            .iter()
            .filter(|c| cited_issue(&c.text).is_some())
            .map(|c| c.line)
            .collect();
        assert_eq!(cited, vec![1, 6, 7]);
    }

    #[test]
    fn python_comments_and_docstrings_are_found_and_strings_skipped() {
        let source = "\"\"\"Module doc (issue 6).\n\nMore.\"\"\"\nx = \"issue 7 # no\"  # real, issue 8\n\
                      print(\n    \"issue 9: output\",\n)\ndef f():\n    r'''doc, issue 10'''\n    \
                      return f\"{x!r} # not a comment\"\n";
        let comments = hash_comments(source, true);
        let cited: Vec<(usize, String)> = comments
            .iter()
            .filter_map(|c| Some((c.line, cited_issue(&c.text)?)))
            .collect();
        assert_eq!(
            cited,
            vec![
                (1, "issue 6".to_owned()),
                (4, "issue 8".to_owned()),
                (9, "issue 10".to_owned())
            ]
        );
    }

    #[test]
    fn toml_strings_at_a_line_start_are_not_docstrings() {
        let source = "\"issue 1\" = 2 # issue 3\n";
        let comments = hash_comments(source, false);
        assert_eq!(texts(&comments), vec![(1, "issue 3")]);
    }

    #[test]
    fn files_past_their_cap_are_found() {
        let long = "x\n".repeat(SOURCE_CAP + 1);
        let finding = over_cap("core/src/big.rs", Kind::Rust, &long).expect("past the cap");
        assert!(
            finding.starts_with("core/src/big.rs:601: 601 lines"),
            "{finding}"
        );
        assert!(over_cap("pytests/test_big.py", Kind::Python, &long).is_none());
        let longer = "x\n".repeat(TEST_CAP + 1);
        assert!(over_cap("pytests/test_big.py", Kind::Python, &longer).is_some());
    }

    #[test]
    fn unit_tests_at_the_bottom_do_not_count() {
        let source = format!(
            "{}#[cfg(test)]\nmod tests {{\n{}}}\n",
            "x\n".repeat(SOURCE_CAP),
            "    y\n".repeat(500)
        );
        assert_eq!(over_cap("core/src/ok.rs", Kind::Rust, &source), None);
    }

    #[test]
    fn allowed_long_files_are_not_findings_and_stale_allowances_are() {
        let long = "x\n".repeat(SOURCE_CAP + 1);
        let mut allowed = Vec::new();
        assert!(check_file("core/src/cell.rs", Kind::Rust, &long, &mut allowed).is_empty());
        assert_eq!(allowed, vec!["core/src/cell.rs".to_owned()]);
        let stale = stale_allowances(&allowed);
        assert_eq!(stale.len(), LONG_FILES.len() - 1);
        assert!(
            stale
                .iter()
                .all(|finding| !finding.contains("core/src/cell.rs"))
        );
    }

    #[test]
    fn kinds_follow_the_extension() {
        assert_eq!(Kind::of("a/b.rs"), Some(Kind::Rust));
        assert_eq!(Kind::of("pytests/pyo3_aio_tests.pyi"), Some(Kind::Python));
        assert_eq!(Kind::of("Cargo.toml"), Some(Kind::Toml));
        assert_eq!(Kind::of("docs/ARCHITECTURE.md"), None);
        assert_eq!(Kind::of(".ci/run"), None);
    }
}
