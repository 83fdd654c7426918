//! The WIT that JavaScript and Python components are built against: WASI
//! 0.2.10 (`wasi:http/proxy` and what it includes), vendored from jco's
//! WASI 0.2.12 WIT with the versions set to the 0.2.10 that
//! componentize-js 0.23 and componentize-py 0.25 are built for. Written out
//! next to the build, so a worker project needs no WIT of its own.

use anyhow::Context as _;
use std::path::Path;

/// The world name both language toolchains are given.
pub const WORLD: &str = "worker";

const DEPS: [(&str, &str); 7] = [
    ("cli", include_str!("../wit/deps/cli/package.wit")),
    ("clocks", include_str!("../wit/deps/clocks/package.wit")),
    (
        "filesystem",
        include_str!("../wit/deps/filesystem/package.wit"),
    ),
    ("http", include_str!("../wit/deps/http/package.wit")),
    ("io", include_str!("../wit/deps/io/package.wit")),
    ("random", include_str!("../wit/deps/random/package.wit")),
    ("sockets", include_str!("../wit/deps/sockets/package.wit")),
];

/// Which world the toolchain builds.
#[derive(Debug, Clone, Copy)]
pub enum World {
    /// Exports `wasi:http/incoming-handler` (StarlingMonkey adds the
    /// imports its `fetch()` needs).
    Export,
    /// The whole `wasi:http/proxy` world (componentize-py imports it all).
    Proxy,
}

/// Write the WIT package and `world` into `dir` (replacing what was there).
pub fn write(dir: &Path, world: World) -> anyhow::Result<()> {
    let body = match world {
        World::Export => "export wasi:http/incoming-handler@0.2.10;",
        World::Proxy => "include wasi:http/proxy@0.2.10;",
    };
    let text = format!("package sigil:worker;\n\nworld {WORLD} {{\n  {body}\n}}\n");
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    for (name, package) in DEPS {
        let deps = dir.join("deps").join(name);
        std::fs::create_dir_all(&deps)
            .with_context(|| format!("cannot create {}", deps.display()))?;
        write(&deps.join("package.wit"), package)?;
    }
    write(&dir.join("world.wit"), &text)
}
