//! Import cycles between a crate's top-level modules, for `cargo xtask tidy`.
//!
//! A crate reads top-down when its modules form layers: a module may use those below it,
//! never one that uses it back. The graph here has one node per top-level module (a file
//! `src/x.rs` or a folder `src/x/`) and an edge `a -> b` when code under `a` names
//! `crate::b` (also inside `crate::{b, ..}`). Comments do not count, nor a file's unit
//! tests (from its `#[cfg(test)]` line), nor `lib.rs`, which re-exports everything. Names
//! re-exported at the crate root (`crate::Thing`) hide their module, so the check sees
//! only paths that spell the module out.

use std::collections::{BTreeMap, BTreeSet};

/// The crates whose modules must not form cycles.
pub(crate) const CRATES: &[&str] = &[
    "core/src",
    "bridge/src",
    "runtimes/tokio/src",
    "runtimes/async-std/src",
    "runtimes/smol/src",
    "pytests/src",
    "xtask/src",
];

/// One finding per cycle: the modules in it and, for each edge, where it is first used.
/// `files` holds `(path relative to the crate's src, source)`.
pub(crate) fn cycles(src: &str, files: &[(String, String)]) -> Vec<String> {
    let modules: BTreeSet<String> = files
        .iter()
        .map(|(path, _)| top_module(path))
        .filter(|module| module != "lib" && module != "main")
        .collect();
    // a -> (b -> "path:line" of the first use)
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (path, source) in files {
        let from = top_module(path);
        if !modules.contains(&from) {
            continue;
        }
        for (line, to) in uses(source) {
            if to != from && modules.contains(&to) {
                edges
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| format!("{src}/{path}:{line}"));
            }
        }
    }
    strongly_connected(&modules, &edges)
        .into_iter()
        .filter(|component| component.len() > 1)
        .map(|component| {
            let members: BTreeSet<&String> = component.iter().collect();
            let mut uses = Vec::new();
            for from in &component {
                for (to, at) in edges.get(from).into_iter().flatten() {
                    if members.contains(to) {
                        uses.push(format!("{from} -> {to} ({at})"));
                    }
                }
            }
            format!(
                "{src}: modules {} form an import cycle: {}",
                component.join(", "),
                uses.join("; ")
            )
        })
        .collect()
}

/// `coroutine/mod.rs` and `coroutine.rs` are both module `coroutine`.
fn top_module(path: &str) -> String {
    let first = path.split('/').next().unwrap_or(path);
    first.strip_suffix(".rs").unwrap_or(first).to_string()
}

/// The modules `source` names as `crate::m` or inside `crate::{m, ..}`, with their lines.
fn uses(source: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_group = false;
    for (index, line) in source.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        if in_group {
            let (group, after) = rest
                .split_once('}')
                .map_or((rest, None), |(g, a)| (g, Some(a)));
            found.extend(group_members(group).map(|m| (index + 1, m)));
            match after {
                Some(after) => {
                    in_group = false;
                    rest = after;
                }
                None => continue,
            }
        }
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                match group.split_once('}') {
                    Some((members, after)) => {
                        found.extend(group_members(members).map(|m| (index + 1, m)));
                        rest = after;
                    }
                    None => {
                        found.extend(group_members(group).map(|m| (index + 1, m)));
                        in_group = true;
                        break;
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push((index + 1, name));
                }
            }
        }
    }
    found
}

/// The first segment of each path in a `{a::b, c, D}` group (only lower-case ones name
/// modules).
fn group_members(group: &str) -> impl Iterator<Item = String> + '_ {
    group.split(',').filter_map(|item| {
        let first = item.trim().split("::").next()?.trim();
        let is_module = first.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && first
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        (is_module && first != "self").then(|| first.to_string())
    })
}

/// Tarjan's strongly connected components, each sorted.
fn strongly_connected(
    nodes: &BTreeSet<String>,
    edges: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        components: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.edges.get(node).into_iter().flat_map(|e| e.keys()) {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(member);
                    component.push(member.to_string());
                    if member == node {
                        break;
                    }
                }
                component.sort();
                self.components.push(component);
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for node in nodes {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.components
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(path, source)| (path.to_string(), source.to_string()))
            .collect()
    }

    #[test]
    fn layers_pass() {
        let crate_files = files(&[
            ("lib.rs", "use crate::a::X; use crate::b::Y;"),
            ("a.rs", "use crate::b::Y;\nuse crate::c;"),
            ("b/mod.rs", "use crate::c::Z;"),
            ("b/inner.rs", "fn f() { crate::c::g() }"),
            ("c.rs", "use crate::Thing;"),
        ]);
        assert!(cycles("src", &crate_files).is_empty());
    }

    #[test]
    fn a_cycle_names_its_modules_and_where_each_edge_is() {
        let crate_files = files(&[
            ("a.rs", "use crate::b::Y;"),
            ("b/mod.rs", "\n\nfn f() { crate::c::g() }"),
            ("c.rs", "use crate::{\n    d,\n    a::X,\n};"),
            ("d.rs", ""),
        ]);
        assert_eq!(
            cycles("src", &crate_files),
            [
                "src: modules a, b, c form an import cycle: a -> b (src/a.rs:1); \
              b -> c (src/b/mod.rs:3); c -> a (src/c.rs:3)"
            ]
        );
    }

    #[test]
    fn comments_tests_and_self_uses_do_not_count() {
        let crate_files = files(&[
            (
                "a.rs",
                "/// See [`crate::b::Y`].\nuse crate::a::Z; // crate::b\n",
            ),
            (
                "b.rs",
                "use crate::a::X;\n#[cfg(test)]\nmod tests { use crate::b; }",
            ),
        ]);
        assert!(cycles("src", &crate_files).is_empty());
        let crate_files = files(&[
            ("a.rs", "#[cfg(test)]\nmod tests { use crate::b::Y; }"),
            ("b.rs", "use crate::a::X;"),
        ]);
        assert!(cycles("src", &crate_files).is_empty());
    }
}
