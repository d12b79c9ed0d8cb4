//! The one-way rule of `src/`, checked: no module depends, directly or through
//! others, on a module that depends on it. A test reads every source file,
//! collects the modules each one names (`crate::a::b`, `super::x`, a child
//! module by its name), and fails on any cycle, naming it.

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    /// Module path (`aws::stream`; `""` for the crate root) → its file.
    fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
        let mut out = BTreeMap::new();
        let mut dirs = vec![src.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let rel = path.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                    parts.pop();
                }
                // The binary's own modules (main.rs, cli.rs) sit on top of the library.
                if parts.len() == 1 && (parts[0] == "main" || parts[0] == "cli") {
                    continue;
                }
                out.insert(parts.join("::"), path);
            }
        }
        out
    }

    /// The code of `text` without comments (doc links are not dependencies) or string literals.
    fn code(text: &str) -> String {
        text.lines()
            .map(|line| {
                let line = line.split("//").next().unwrap_or("");
                let mut kept = String::new();
                let mut in_string = false;
                for c in line.chars() {
                    if c == '"' {
                        in_string = !in_string;
                    } else if !in_string {
                        kept.push(c);
                    }
                }
                kept
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The longest known module that `path` (a `::`-separated path from the crate root) names.
    fn resolve(known: &BTreeMap<String, PathBuf>, path: &[&str]) -> Option<String> {
        (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|m| known.contains_key(m))
    }

    fn idents(s: &str) -> Vec<&str> {
        s.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).filter(|w| !w.is_empty()).collect()
    }

    /// The modules `module` depends on.
    fn dependencies(known: &BTreeMap<String, PathBuf>, module: &str, text: &str) -> BTreeSet<String> {
        let here: Vec<&str> = if module.is_empty() { vec![] } else { module.split("::").collect() };
        let parent = &here[..here.len().saturating_sub(1)];
        let code = code(text);
        let mut deps = BTreeSet::new();
        // `use super::{a, b::C}` and `use crate::{x, y}`: each item on its own.
        let mut paths: Vec<String> = Vec::new();
        for (prefix, rest) in ["crate::{", "super::{"].iter().flat_map(|p| code.split(p).skip(1).map(move |r| (p, r))) {
            let inner = rest.split('}').next().unwrap_or("");
            for item in inner.split(',') {
                paths.push(format!("{}{}", &prefix[..prefix.len() - 1], item.trim()));
            }
        }
        paths.extend(idents(&code).into_iter().map(str::to_string));
        for word in &paths {
            let parts: Vec<&str> = word.split("::").filter(|p| !p.is_empty()).collect();
            let target = match parts.first() {
                Some(&"crate") => resolve(known, &parts[1..]),
                Some(&"super") => {
                    let mut base = parent.to_vec();
                    base.extend(&parts[1..]);
                    resolve(known, &base).or_else(|| Some(parent.join("::")))
                }
                // A child module used by its name (`error::AwsError` in `aws/mod.rs`).
                Some(first) if parts.len() > 1 => {
                    let mut child = here.clone();
                    child.push(first);
                    known.contains_key(&child.join("::")).then(|| {
                        let mut full = here.clone();
                        full.extend(&parts);
                        resolve(known, &full).unwrap_or(child.join("::"))
                    })
                }
                _ => None,
            };
            if let Some(t) = target {
                // A module declares and uses its own rooms; a room's use of its parent counts.
                let inside = !module.is_empty() && t.starts_with(&format!("{module}::"));
                if t != module && !t.is_empty() && !inside {
                    deps.insert(t);
                }
            }
        }
        deps
    }

    /// Every cycle's modules, found by depth-first search.
    fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
        fn visit(
            node: &str,
            graph: &BTreeMap<String, BTreeSet<String>>,
            stack: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(i) = stack.iter().position(|n| n == node) {
                let mut c = stack[i..].to_vec();
                c.push(node.to_string());
                return Some(c);
            }
            if done.contains(node) {
                return None;
            }
            stack.push(node.to_string());
            for next in graph.get(node).into_iter().flatten() {
                if let Some(c) = visit(next, graph, stack, done) {
                    return Some(c);
                }
            }
            stack.pop();
            done.insert(node.to_string());
            None
        }
        let mut done = BTreeSet::new();
        graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
    }

    fn graph() -> BTreeMap<String, BTreeSet<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let known = modules(&src);
        known
            .iter()
            .map(|(m, path)| (m.clone(), dependencies(&known, m, &std::fs::read_to_string(path).unwrap())))
            .collect()
    }

    #[test]
    fn no_module_depends_on_itself_through_others() {
        let graph = graph();
        if let Some(c) = cycle(&graph) {
            panic!("import cycle in src/: {}", c.join(" -> "));
        }
    }

    #[test]
    fn the_check_sees_the_dependencies_it_must() {
        let graph = graph();
        let deps = |m: &str| graph.get(m).cloned().unwrap_or_default();
        assert!(deps("aws::stream").contains("api"), "{:?}", deps("aws::stream"));
        assert!(deps("reconcile").iter().any(|d| d.starts_with("aws")), "{:?}", deps("reconcile"));
        assert!(deps("named_queries").contains("partitions"), "{:?}", deps("named_queries"));
        // And a cycle is found when there is one.
        let mut with_cycle = graph.clone();
        with_cycle.entry("api".into()).or_default().insert("reconcile".into());
        let found = cycle(&with_cycle).expect("the planted cycle is found");
        assert!(found.contains(&"api".to_string()), "{found:?}");
    }
}
