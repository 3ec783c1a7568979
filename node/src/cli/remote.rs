//! The CLI through a running daemon: while `ipfs-kit daemon` holds the repository, `add`,
//! `cat`, `get`, `ls`, `block`, `dag`, `pin`, `repo gc|stat` and `id` call its RPC API
//! ([`crate::api::client`]) and print what the local commands print.

use super::args::{AddArgs, BlockCmd, Command, DagCmd, PinCmd, RefsArgs, RepoCmd};
use crate::api::client::{ndjson_lines, ApiClient};
use anyhow::{bail, Context as _, Result};
use reqwest::blocking::multipart::{Form, Part};
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

/// Whether `command` goes to the daemon when one runs.
pub(super) fn through_daemon(command: &Command) -> bool {
    matches!(
        command,
        Command::Add(_)
            | Command::Cat { .. }
            | Command::Get { .. }
            | Command::Ls { .. }
            | Command::Refs(_)
            | Command::Block(_)
            | Command::Dag(_)
            | Command::Pin(_)
            | Command::Id { .. }
            | Command::Repo(RepoCmd::Gc { .. } | RepoCmd::Stat)
    )
}

/// Runs a command that [`through_daemon`] accepted.
pub(super) fn run(c: &ApiClient, command: Command) -> Result<()> {
    match command {
        Command::Add(a) => add(c, a),
        Command::Cat {
            path,
            offset,
            length,
        } => {
            let mut args = vec![("arg", path), ("offset", offset.to_string())];
            if let Some(l) = length {
                args.push(("length", l.to_string()));
            }
            copy_out(c.call("cat", &args)?)
        }
        Command::Get { path, output } => get(c, &path, output),
        Command::Ls { path } => {
            let v = c.json("ls", &[("arg", path)])?;
            let mut out = std::io::stdout().lock();
            for obj in v["Objects"].as_array().into_iter().flatten() {
                for l in obj["Links"].as_array().into_iter().flatten() {
                    let (hash, name) = (
                        l["Hash"].as_str().unwrap_or(""),
                        l["Name"].as_str().unwrap_or(""),
                    );
                    if l["Type"].as_i64() == Some(1) {
                        writeln!(out, "{hash} - {name}/")?;
                    } else {
                        writeln!(out, "{hash} {} {name}", l["Size"].as_u64().unwrap_or(0))?;
                    }
                }
            }
            Ok(())
        }
        Command::Refs(a) => refs(c, a),
        Command::Block(b) => block(c, b),
        Command::Dag(d) => dag(c, d),
        Command::Pin(p) => pin(c, p),
        Command::Repo(RepoCmd::Gc { quiet }) => {
            let r = c.call("repo/gc", &[("quiet", quiet.to_string())])?;
            let mut out = std::io::stdout().lock();
            for line in ndjson_lines(r) {
                let v = line?;
                if let Some(k) = v["Key"]["/"].as_str() {
                    writeln!(out, "removed {k}")?;
                }
            }
            Ok(())
        }
        Command::Repo(RepoCmd::Stat) => {
            let s = c.json("repo/stat", &[])?;
            println!("NumObjects: {}", s["NumObjects"]);
            println!("RepoSize:   {}", s["RepoSize"]);
            println!("StorageMax: {}", s["StorageMax"]);
            println!("RepoPath:   {}", s["RepoPath"].as_str().unwrap_or(""));
            println!("Version:    {}", s["Version"].as_str().unwrap_or(""));
            Ok(())
        }
        Command::Id { peer } => {
            let args: Vec<(&str, String)> = peer.into_iter().map(|p| ("arg", p)).collect();
            let v = c.json("id", &args)?;
            let mut buf = Vec::new();
            let mut ser = serde_json::Serializer::with_formatter(
                &mut buf,
                serde_json::ser::PrettyFormatter::with_indent(b"\t"),
            );
            serde::Serialize::serialize(&v, &mut ser)?;
            println!("{}", String::from_utf8_lossy(&buf));
            Ok(())
        }
        _ => bail!("this command does not run through the daemon"),
    }
}

fn copy_out(mut r: reqwest::blocking::Response) -> Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    std::io::copy(&mut r, &mut out)?;
    out.flush()?;
    Ok(())
}

/// A part whose name the server reads as a relative path.
fn named(part: Part, path: &str, mime: &str) -> Result<Part> {
    Ok(part.file_name(path.to_owned()).mime_str(mime)?)
}

/// Adds the parts for `path` (named `rel`) to `form`: a file, a symlink, or a directory and
/// everything under it (names in byte order, dot-files only with `hidden`).
fn add_parts(mut form: Form, path: &Path, rel: &str, hidden: bool, depth: usize) -> Result<Form> {
    if depth > crate::unixfs::dir::DIR_DEPTH_MAX {
        bail!("{}: directory tree too deep", path.display());
    }
    let meta = std::fs::symlink_metadata(path).with_context(|| format!("{}", path.display()))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(path)?;
        let part = Part::bytes(target.as_os_str().as_bytes().to_vec());
        form = form.part("file", named(part, rel, "application/symlink")?);
    } else if ft.is_file() {
        let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
        let part = Part::reader_with_length(file, meta.len());
        form = form.part("file", named(part, rel, "application/octet-stream")?);
    } else if ft.is_dir() {
        form = form.part(
            "file",
            named(Part::bytes(Vec::new()), rel, "application/x-directory")?,
        );
        let mut names: Vec<_> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for n in names {
            if !hidden && n.as_bytes().starts_with(b".") {
                continue;
            }
            let name = n
                .to_str()
                .with_context(|| format!("{}: file name is not UTF-8", path.display()))?;
            form = add_parts(
                form,
                &path.join(&n),
                &format!("{rel}/{name}"),
                hidden,
                depth + 1,
            )?;
        }
    } else {
        bail!("{}: unsupported file type", path.display());
    }
    Ok(form)
}

fn add(c: &ApiClient, a: AddArgs) -> Result<()> {
    let mut form = Form::new();
    for p in &a.paths {
        let meta = std::fs::symlink_metadata(p).with_context(|| format!("{}", p.display()))?;
        if meta.is_dir() && !a.recursive {
            bail!(
                "{} is a directory, use the '-r' flag to specify directories",
                p.display()
            );
        }
        let cleaned: PathBuf = p.components().collect();
        let name = match cleaned.file_name() {
            Some(n) => n.to_owned(),
            None => std::fs::canonicalize(&cleaned)?
                .file_name()
                .map(|n| n.to_owned())
                .unwrap_or_default(),
        };
        let name = name.to_str().context("file name is not UTF-8")?.to_owned();
        form = add_parts(form, &cleaned, &name, a.hidden, 0)?;
    }
    let mut args = vec![
        ("chunker", a.chunker.clone()),
        ("hash", a.hash.clone()),
        ("trickle", a.trickle.to_string()),
        ("inline", a.inline.to_string()),
        ("inline-limit", a.inline_limit.to_string()),
        ("only-hash", a.only_hash.to_string()),
        ("pin", a.pin.to_string()),
        ("wrap-with-directory", a.wrap_with_directory.to_string()),
    ];
    if let Some(v) = a.cid_version {
        args.push(("cid-version", v.to_string()));
    }
    if let Some(r) = a.raw_leaves {
        args.push(("raw-leaves", r.to_string()));
    }
    let r = c.upload("add", &args, form)?;
    let mut out = std::io::stdout().lock();
    let mut last = None;
    for line in ndjson_lines(r) {
        let v = line?;
        let (Some(hash), Some(name)) = (v["Hash"].as_str(), v["Name"].as_str()) else {
            continue;
        };
        if !(a.silent || a.quieter) {
            if a.quiet {
                writeln!(out, "{hash}")?;
            } else {
                writeln!(out, "added {hash} {name}")?;
            }
        }
        last = Some(hash.to_owned());
    }
    if a.quieter && !a.silent {
        if let Some(l) = last {
            writeln!(out, "{l}")?;
        }
    }
    Ok(())
}

/// `get`: the daemon's tar, unpacked ([`unpack`]) into a fresh directory beside the output,
/// then moved into place.
fn get(c: &ApiClient, path: &str, output: Option<PathBuf>) -> Result<()> {
    let r = c.call("get", &[("arg", path.to_owned())])?;
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let out = match output {
        Some(o) => o,
        None if crate::unixfs::export::check_entry_name(last).is_ok() => PathBuf::from(last),
        None => PathBuf::from(crate::api::path_root(path)?.to_string()),
    };
    eprintln!("Saving file(s) to {}", out.display());
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let staging = parent.join(format!(".ipfs-kit-get-{}", std::process::id()));
    std::fs::create_dir(&staging).with_context(|| format!("{}", staging.display()))?;
    let result = (|| -> Result<()> {
        unpack(r, &staging).context("unpacking the daemon's tar")?;
        let mut tops = std::fs::read_dir(&staging)?;
        let top = tops.next().context("empty answer")??;
        if tops.next().is_some() {
            bail!("the daemon's tar has several top-level entries");
        }
        std::fs::rename(top.path(), &out).with_context(|| format!("writing {}", out.display()))
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// Unpacks a tar into `dst`, an empty directory. A regular file's bytes are written with
/// [`DirectWriter`](crate::unixfs::direct_write::DirectWriter), as the in-process `get` writes
/// them (past the page cache: on a VM whose fresh page-cache pages cost a host fault, the
/// cost of a large `get`); its path must be plain names under `dst`, through directories
/// only (no `..`, no absolute path, no symlink on the way). Every other entry (directories,
/// symlinks) is placed by the `tar` crate, which refuses the same. An entry refused is an
/// error, not skipped.
fn unpack(r: impl std::io::Read, dst: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(r);
    archive.set_preserve_permissions(false);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.into_owned();
        if entry.header().entry_type() != tar::EntryType::Regular {
            if !entry.unpack_in(dst)? {
                bail!("refusing tar entry {}", name.display());
            }
            continue;
        }
        let path = plain_path_under(dst, &name)?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("{}", path.display()))?;
        let mut w = crate::unixfs::direct_write::DirectWriter::new(file);
        std::io::copy(&mut entry, &mut w).with_context(|| format!("{}", path.display()))?;
        w.finish().with_context(|| format!("{}", path.display()))?;
    }
    Ok(())
}

/// `dst` joined with `name`, made of plain names only, its directories created under `dst` as
/// needed; an existing one that is not a directory (a symlink included) is refused.
fn plain_path_under(dst: &Path, name: &Path) -> Result<PathBuf> {
    use std::path::Component;
    let mut parts = Vec::new();
    for c in name.components() {
        match c {
            Component::Normal(n) => parts.push(n),
            Component::CurDir => {}
            _ => bail!("refusing tar entry {}", name.display()),
        }
    }
    let Some((file, dirs)) = parts.split_last() else {
        bail!("refusing tar entry {}", name.display());
    };
    let mut path = dst.to_path_buf();
    for d in dirs {
        path.push(d);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!(
                "refusing tar entry {}: {} is not a directory",
                name.display(),
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&path).with_context(|| format!("{}", path.display()))?
            }
            Err(e) => return Err(e).with_context(|| format!("{}", path.display())),
        }
    }
    path.push(file);
    Ok(path)
}

/// A file argument's contents as an upload part (stdin for `-`).
fn input_part(file: &Path) -> Result<Part> {
    let part = if file.as_os_str() == "-" {
        Part::reader(std::io::stdin())
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("{}", file.display()))?;
        let len = f.metadata()?.len();
        Part::reader_with_length(f, len)
    };
    named(part, "", "application/octet-stream")
}

fn block(c: &ApiClient, cmd: BlockCmd) -> Result<()> {
    match cmd {
        BlockCmd::Put {
            file,
            cid_codec,
            mhtype,
            pin,
        } => {
            let form = Form::new().part("data", input_part(&file)?);
            let args = [
                ("cid-codec", cid_codec),
                ("mhtype", mhtype),
                ("pin", pin.to_string()),
            ];
            let v = c.upload_json("block/put", &args, form)?;
            println!("{}", v["Key"].as_str().unwrap_or(""));
        }
        BlockCmd::Get { cid } => copy_out(c.call("block/get", &[("arg", cid)])?)?,
        BlockCmd::Stat { cid } => {
            let v = c.json("block/stat", &[("arg", cid)])?;
            println!(
                "Key: {}\nSize: {}",
                v["Key"].as_str().unwrap_or(""),
                v["Size"]
            );
        }
        BlockCmd::Rm { cids, force, quiet } => {
            let mut args: Vec<(&str, String)> = cids.into_iter().map(|c| ("arg", c)).collect();
            args.push(("force", force.to_string()));
            let r = c.call("block/rm", &args)?;
            let mut failed = false;
            for line in ndjson_lines(r) {
                let v = line?;
                let hash = v["Hash"].as_str().unwrap_or("");
                match v["Error"].as_str().filter(|e| !e.is_empty()) {
                    Some(e) => {
                        eprintln!("cannot remove {hash}: {e}");
                        failed = true;
                    }
                    None if !quiet => println!("removed {hash}"),
                    None => {}
                }
            }
            if failed {
                bail!("some blocks not removed");
            }
        }
    }
    Ok(())
}

fn refs(c: &ApiClient, a: RefsArgs) -> Result<()> {
    let r = if a.paths == ["local"] {
        c.call("refs/local", &[])?
    } else {
        let mut args: Vec<(&str, String)> = a.paths.into_iter().map(|p| ("arg", p)).collect();
        args.extend([
            ("format", a.format),
            ("edges", a.edges.to_string()),
            ("unique", a.unique.to_string()),
            ("recursive", a.recursive.to_string()),
            ("max-depth", a.max_depth.to_string()),
        ]);
        c.call("refs", &args)?
    };
    let mut out = std::io::stdout().lock();
    for line in ndjson_lines(r) {
        let v = line?;
        match v["Err"].as_str() {
            Some(e) if !e.is_empty() => bail!("{e}"),
            _ => writeln!(out, "{}", v["Ref"].as_str().unwrap_or(""))?,
        }
    }
    Ok(())
}

fn dag(c: &ApiClient, cmd: DagCmd) -> Result<()> {
    match cmd {
        DagCmd::Put {
            file,
            store_codec,
            input_codec,
            hash,
            pin,
        } => {
            let form = Form::new().part("data", input_part(&file)?);
            let args = [
                ("store-codec", store_codec),
                ("input-codec", input_codec),
                ("hash", hash),
                ("pin", pin.to_string()),
            ];
            let v = c.upload_json("dag/put", &args, form)?;
            println!("{}", v["Cid"]["/"].as_str().unwrap_or(""));
        }
        DagCmd::Get { path, output_codec } => {
            copy_out(c.call("dag/get", &[("arg", path), ("output-codec", output_codec)])?)?
        }
        DagCmd::Export { cid } => copy_out(c.call("dag/export", &[("arg", cid)])?)?,
        DagCmd::Stat { roots } => {
            let mut args: Vec<(&str, String)> = roots.into_iter().map(|r| ("arg", r)).collect();
            args.push(("progress", "false".into()));
            super::blocks::print_dag_stat(&c.json("dag/stat", &args)?)?;
        }
        DagCmd::Import { files, pin_roots } => {
            let inputs = if files.is_empty() {
                vec![PathBuf::from("-")]
            } else {
                files
            };
            for f in inputs {
                let form = Form::new().part("file", input_part(&f)?);
                let r = c.upload("dag/import", &[("pin-roots", pin_roots.to_string())], form)?;
                for line in ndjson_lines(r) {
                    let v = line?;
                    if let Some(root) = v["Root"]["Cid"]["/"].as_str() {
                        println!("Pinned root\t{root}\tsuccess");
                    }
                }
            }
        }
    }
    Ok(())
}

fn pin(c: &ApiClient, cmd: PinCmd) -> Result<()> {
    match cmd {
        PinCmd::Add {
            paths,
            recursive,
            name,
        } => {
            for p in paths {
                let mut args = vec![("arg", p), ("recursive", recursive.to_string())];
                if let Some(n) = &name {
                    args.push(("name", n.clone()));
                }
                let v = c.json("pin/add", &args)?;
                for cid in v["Pins"].as_array().into_iter().flatten() {
                    println!(
                        "pinned {} {}",
                        cid.as_str().unwrap_or(""),
                        if recursive { "recursively" } else { "directly" }
                    );
                }
            }
        }
        PinCmd::Ls {
            paths,
            kind,
            quiet,
            name,
        } => {
            let mut args: Vec<(&str, String)> = paths.into_iter().map(|p| ("arg", p)).collect();
            args.push(("type", kind));
            args.push(("names", "true".into()));
            if let Some(n) = name {
                args.push(("name", n));
            }
            let v = c.json("pin/ls", &args)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for (cid, e) in v["Keys"].as_object().into_iter().flatten() {
                let t = e["Type"].as_str().unwrap_or("");
                match (quiet, e["Name"].as_str().filter(|n| !n.is_empty())) {
                    (true, _) => writeln!(out, "{cid}")?,
                    (false, Some(n)) => writeln!(out, "{cid} {t} {n}")?,
                    (false, None) => writeln!(out, "{cid} {t}")?,
                }
            }
            out.flush()?;
        }
        PinCmd::Rm { paths } => {
            for p in paths {
                let v = c.json("pin/rm", &[("arg", p)])?;
                for cid in v["Pins"].as_array().into_iter().flatten() {
                    println!("unpinned {}", cid.as_str().unwrap_or(""));
                }
            }
        }
        PinCmd::Update { from, to, unpin } => {
            let args = [("arg", from), ("arg", to), ("unpin", unpin.to_string())];
            let v = c.json("pin/update", &args)?;
            let pins = |i: usize| v["Pins"][i].as_str().unwrap_or("").to_owned();
            println!("updated {} to {}", pins(0), pins(1));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn file_header(len: usize) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(len as u64);
        h.set_mode(0o644);
        h
    }

    /// A tar entry named `name` byte for byte (the builder refuses `..`, as it should).
    fn raw_entry(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = file_header(data.len());
        let field = &mut h.as_old_mut().name;
        field[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    #[test]
    fn unpacks_files_directories_and_links() {
        let big: Vec<u8> = (0..3 * 1024 * 1024 + 17)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, "d", std::io::empty()).unwrap();
        b.append_data(&mut file_header(big.len()), "d/big", &big[..])
            .unwrap();
        b.append_data(&mut file_header(5), "d/e/small", &b"small"[..])
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "d/l", "big").unwrap();
        let tar = b.into_inner().unwrap();
        let dst = tempfile::tempdir().unwrap();
        unpack(&tar[..], dst.path()).unwrap();
        assert_eq!(std::fs::read(dst.path().join("d/big")).unwrap(), big);
        assert_eq!(
            std::fs::read(dst.path().join("d/e/small")).unwrap(),
            b"small"
        );
        assert_eq!(
            std::fs::read_link(dst.path().join("d/l")).unwrap(),
            Path::new("big")
        );
    }

    #[test]
    fn refuses_paths_out_of_the_directory() {
        let outside = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        // `..`
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "../escaped", b"x");
        let e = unpack(&b.into_inner().unwrap()[..], dst.path()).unwrap_err();
        assert!(e.to_string().contains("refusing"), "{e:#}");
        assert!(!dst.path().parent().unwrap().join("escaped").exists());
        // An absolute path.
        let mut b = tar::Builder::new(Vec::new());
        let abs = outside.path().join("abs");
        raw_entry(&mut b, abs.to_str().unwrap(), b"x");
        assert!(unpack(&b.into_inner().unwrap()[..], dst.path()).is_err());
        assert!(!abs.exists());
        // Through a symlink the tar itself placed.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "l", outside.path()).unwrap();
        b.append_data(&mut file_header(1), "l/evil", &b"x"[..])
            .unwrap();
        let dst = tempfile::tempdir().unwrap();
        let e = unpack(&b.into_inner().unwrap()[..], dst.path()).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e:#}");
        assert!(!outside.path().join("evil").exists());
    }
}
