//! The image `scripts/image.sh` writes (an OCI archive), checked without a
//! container runtime: unpacked here (blobs verified against their digests),
//! its config read, and its binary run from the unpacked root filesystem in a
//! mount namespace, chrooted, as UID/GID 65532, on a read-only root: the
//! version, the CRDs, and a TLS handshake, to a name resolved by DNS, that only
//! the image's CA bundle makes succeed. Also: the Dockerfile builds the same image.
//!
//! Needs root (chroot, mount) and the archive: `scripts/image.sh --profile image`
//! (scripts/test.sh runs it first), or SALES_OPERATOR_IMAGE_ARCHIVE=FILE.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const UID: u32 = 65532;

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn both(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", both(&out));
    out
}

/// The archive: SALES_OPERATOR_IMAGE_ARCHIVE, else where scripts/image.sh writes it.
fn archive() -> PathBuf {
    if let Some(file) = std::env::var_os("SALES_OPERATOR_IMAGE_ARCHIVE") {
        return PathBuf::from(file);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| project().join("target"), PathBuf::from);
    target.join("image").join("sales-operator-linux-amd64.oci.tar")
}

/// The unpacked image: its config and root filesystem.
struct Image {
    config: serde_json::Value,
    rootfs: PathBuf,
    _dir: tempfile::TempDir,
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A blob of the layout, after checking that its content has its digest.
fn blob(layout: &Path, descriptor: &serde_json::Value) -> PathBuf {
    let digest = descriptor["digest"].as_str().expect("descriptor digest");
    let hex = digest.strip_prefix("sha256:").unwrap_or_else(|| panic!("not sha256: {digest}"));
    let path = layout.join("blobs/sha256").join(hex);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("blob {digest}: {e}"));
    let actual: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(actual, hex, "blob content does not match its digest");
    assert_eq!(descriptor["size"].as_u64(), Some(bytes.len() as u64), "size of {digest}");
    path
}

fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let archive = archive();
        assert!(
            archive.is_file(),
            "{} missing: run `scripts/image.sh --profile image` first (scripts/test.sh does)",
            archive.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(&layout).unwrap();
        std::fs::create_dir_all(&rootfs).unwrap();
        run_ok(Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&layout));
        assert_eq!(json(&layout.join("oci-layout"))["imageLayoutVersion"], "1.0.0");
        let index = json(&layout.join("index.json"));
        let manifests = index["manifests"].as_array().expect("index.json manifests");
        assert_eq!(manifests.len(), 1, "one image: {index}");
        assert_eq!(
            manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
            env!("CARGO_PKG_VERSION"),
            "tagged with the version"
        );
        let manifest = json(&blob(&layout, &manifests[0]));
        assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
        let config = json(&blob(&layout, &manifest["config"]));
        let layers = manifest["layers"].as_array().expect("layers");
        assert!(!layers.is_empty());
        for layer in layers {
            assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
            let file = blob(&layout, layer);
            run_ok(Command::new("tar").args(["--numeric-owner", "-xzf"]).arg(file).arg("-C").arg(&rootfs));
        }
        Image { config, rootfs, _dir: dir }
    })
}

/// Every path below `root` (relative, without the leading `/`).
fn tree(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            out.insert(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            }
        }
    }
    out
}

/// Whether an ELF64 file asks for a program interpreter (PT_INTERP): a dynamically linked binary.
fn has_interpreter(elf: &[u8]) -> bool {
    assert!(elf.len() > 64 && &elf[..4] == b"\x7fELF" && elf[4] == 2, "not an ELF64 file");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = phoff + i * size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3
    })
}

#[test]
fn the_config_runs_the_static_binary_as_65532_with_the_oci_labels() {
    let image = image();
    let c = &image.config;
    assert_eq!((c["os"].as_str(), c["architecture"].as_str()), (Some("linux"), Some("amd64")));
    let config = &c["config"];
    assert_eq!(config["User"], format!("{UID}:{UID}"));
    assert_eq!(config["Entrypoint"], serde_json::json!(["/sales-operator"]), "exec form: no shell runs it");
    assert_eq!(config["Cmd"], serde_json::json!(["run"]));
    let labels = &config["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(labels["org.opencontainers.image.licenses"], env!("CARGO_PKG_LICENSE"));
    let source = labels["org.opencontainers.image.source"].as_str().unwrap_or_default();
    assert!(source.starts_with("https://"), "source: {source:?}");
    let revision = labels["org.opencontainers.image.revision"].as_str().unwrap_or_default();
    assert!(revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()), "revision: {revision:?}");

    let binary = std::fs::read(image.rootfs.join("sales-operator")).expect("/sales-operator");
    assert!(!has_interpreter(&binary), "/sales-operator is dynamically linked");
    let passwd = std::fs::read_to_string(image.rootfs.join("etc/passwd")).expect("/etc/passwd");
    assert!(passwd.lines().any(|l| l.starts_with(&format!("nonroot:x:{UID}:{UID}:"))), "{passwd}");
    use std::os::unix::fs::MetadataExt;
    let home = std::fs::metadata(image.rootfs.join("home/nonroot")).unwrap();
    assert_eq!((home.uid(), home.gid()), (UID, UID), "nonroot owns its home");
    assert_eq!(std::fs::metadata(image.rootfs.join("sales-operator")).unwrap().uid(), 0, "the binary is root's");
}

#[test]
fn the_image_holds_the_binary_a_ca_bundle_and_users_and_nothing_else() {
    let image = image();
    let expected: BTreeSet<String> = [
        "etc",
        "etc/group",
        "etc/nsswitch.conf",
        "etc/passwd",
        "etc/ssl",
        "etc/ssl/certs",
        "etc/ssl/certs/ca-certificates.crt",
        "home",
        "home/nonroot",
        "sales-operator",
        "tmp",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(tree(&image.rootfs), expected, "no shell, no libc, no package manager");
    let bundle = std::fs::read_to_string(image.rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    let certs = bundle.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(certs >= 100, "a public CA bundle has well over 100 roots, this one {certs}");
}

/// The archive's binary run chrooted into the unpacked image as 65532:65532, in a mount
/// namespace whose image root is bind-mounted read-only; `mounts` are (host file or dir,
/// path in the image) bound on top first. Only `env` is passed on. Killed after 90 s.
fn run_in_image(mounts: &[(&Path, &str)], env: &[(&str, &str)], args: &[&str]) -> Output {
    let root = &image().rootfs;
    let mut script = String::from("set -e; r=$1; shift; mount --bind \"$r\" \"$r\"; ");
    for (i, (_, inside)) in mounts.iter().enumerate() {
        script.push_str(&format!("mount --bind \"$M{i}\" \"$r{inside}\"; "));
    }
    script.push_str(
        "mount -o remount,bind,ro \"$r\"; \
         if touch \"$r/.written\" 2>/dev/null; then echo 'image root is writable' >&2; exit 99; fi; \
         exec chroot --userspec=65532:65532 \"$r\" /sales-operator \"$@\"",
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--fork", "--kill-child", "sh", "-c", &script, "sh"]).arg(root).args(args);
    cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").envs(env.iter().copied());
    for (i, (host, _)) in mounts.iter().enumerate() {
        cmd.env(format!("M{i}"), host);
    }
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("unshare");
    wait_with_timeout(child, Duration::from_secs(90))
}

/// `child`'s output, killed after `limit`. Its pipes are drained while it runs: a child whose
/// output outgrows the pipe buffer (64 KiB; the CRDs are more) would otherwise block forever.
fn wait_with_timeout(mut child: Child, limit: Duration) -> Output {
    fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output { status, stdout: stdout.join().expect("stdout"), stderr: stderr.join().expect("stderr") }
}

#[test]
fn the_binary_runs_from_the_read_only_image_and_prints_its_version_and_the_crds() {
    let out = run_in_image(&[], &[], &["--version"]);
    assert!(out.status.success(), "{}", both(&out));
    let revision = image().config["config"]["Labels"]["org.opencontainers.image.revision"].as_str().unwrap();
    let line = text(&out.stdout);
    let expected = format!("sales-operator {} (revision {revision}, built ", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&expected), "{line:?} does not start with {expected:?}: the label is the binary's");

    let out = run_in_image(&[], &[], &["crd"]);
    assert!(out.status.success(), "{}", both(&out));
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(project().join("crds")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let committed: String = files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    assert!(text(&out.stdout) == committed, "`crd` in the image differs from crds/*.yaml");
}

/// A CA and a certificate for 127.0.0.1 and DynamoDB's eu-west-1 name that it signed (openssl), in `dir`.
fn test_pki(dir: &Path) {
    let openssl = |args: &[&str]| run_ok(Command::new("openssl").current_dir(dir).args(args));
    openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"]);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-subj",
        "/CN=sales-operator image test CA",
        "-days",
        "2",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        "ca.crt",
    ]);
    openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key"]);
    openssl(&["req", "-new", "-key", "server.key", "-subj", "/CN=127.0.0.1", "-out", "server.csr"]);
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:dynamodb.eu-west-1.amazonaws.com,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
}

/// An HTTPS endpoint on 127.0.0.1 (Python's ssl module) with `dir`/server.crt, and a DNS
/// server on 127.53.N.1:53 that resolves every name to 127.0.0.1. Its stdout says
/// `PORT <https port> <dns address>`, then `DNS <name> <type>` per question, `REQUEST <line>`
/// per completed handshake and `HANDSHAKE-FAILED ...` per failed one; every request is
/// answered 400 AccessDeniedException.
const HTTPS_ENDPOINT: &str = r#"
import socket, ssl, struct, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1] + "/server.crt", sys.argv[1] + "/server.key")
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(64); srv.settimeout(120)
dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(1, 200):
    try:
        dns.bind(("127.53.%d.1" % i, 53)); break
    except OSError:
        continue
print("PORT", srv.getsockname()[1], dns.getsockname()[0], flush=True)
def resolve():
    # Every A question is answered 127.0.0.1, every other type with no record.
    while True:
        data, peer = dns.recvfrom(512)
        end = 12 + data[12:].index(b"\0") + 5
        question = data[12:end]
        qtype = struct.unpack(">H", question[-4:-2])[0]
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("127.0.0.1") if qtype == 1 else b""
        labels, i = [], 0
        while question[i]:
            labels.append(question[i + 1:i + 1 + question[i]].decode(errors="replace")); i += 1 + question[i]
        print("DNS", ".".join(labels), qtype, flush=True)
        dns.sendto(data[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 1 if answer else 0, 0, 0) + question + answer, peer)
threading.Thread(target=resolve, daemon=True).start()
body = b'{"__type":"com.amazonaws.dynamodb.v20120810#AccessDeniedException","message":"answered by the image test endpoint"}'
def serve(conn):
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except Exception as e:
        print("HANDSHAKE-FAILED", e, flush=True); conn.close(); return
    try:
        tls.settimeout(10)
        line = tls.makefile("rb").readline().decode(errors="replace").strip()
        print("REQUEST", line, flush=True)
        tls.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        tls.close()
    except Exception as e:
        print("ERROR", e, flush=True)
while True:
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        break
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

struct Endpoint {
    child: Child,
    port: u16,
    dns: String,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Endpoint {
    fn start(pki: &Path) -> Endpoint {
        let mut child = Command::new("python3")
            .args(["-c", HTTPS_ENDPOINT])
            .arg(pki)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        let (port, dns) = first
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.split_once(' '))
            .and_then(|(port, dns)| Some((port.parse().ok()?, dns.to_string())))
            .unwrap_or_else(|| panic!("{first:?}"));
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Endpoint { child, port, dns, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sales-operator plan` of a minimal pipeline in the image, its AWS endpoint the real name
/// of DynamoDB in eu-west-1, resolved by `endpoint`'s DNS server (as a pod's /etc/resolv.conf
/// names the cluster DNS) to `endpoint`. The image's /etc is bound over by a copy with that
/// resolv.conf, and its CA bundle by `bundle` when given.
fn plan_against(endpoint: &Endpoint, work: &Path, bundle: Option<&Path>) -> Output {
    let manifests = work.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("pipeline.yaml"),
        "apiVersion: sales-operator.dev/v1alpha1\nkind: SalesPipeline\nmetadata:\n  name: tls\n  namespace: default\nspec: {}\n",
    )
    .unwrap();
    let etc = work.join("etc");
    let _ = std::fs::remove_dir_all(&etc);
    run_ok(Command::new("cp").arg("-a").arg(image().rootfs.join("etc")).arg(&etc));
    std::fs::write(etc.join("resolv.conf"), format!("nameserver {}\n", endpoint.dns)).unwrap();
    let mut mounts: Vec<(&Path, &str)> = vec![(manifests.as_path(), "/tmp"), (etc.as_path(), "/etc")];
    if let Some(bundle) = bundle {
        mounts.push((bundle, "/etc/ssl/certs/ca-certificates.crt"));
    }
    let url = format!("https://dynamodb.eu-west-1.amazonaws.com:{}", endpoint.port);
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_MAX_ATTEMPTS", "1"),
    ];
    run_in_image(&mounts, &env, &["plan", "-f", "/tmp/pipeline.yaml", "--aws-endpoint-url", &url])
}

#[test]
fn tls_succeeds_only_with_the_ca_in_the_images_trust_store() {
    let work = tempfile::tempdir().unwrap();
    let pki = work.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    test_pki(&pki);

    // The image's bundle does not know the test CA: no request gets through the handshake.
    let endpoint = Endpoint::start(&pki);
    let refused = plan_against(&endpoint, work.path(), None);
    assert!(!refused.status.success(), "{}", both(&refused));
    let lines = endpoint.lines();
    assert!(!lines.iter().any(|l| l.starts_with("REQUEST")), "a request without the CA: {lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("HANDSHAKE-FAILED")),
        "no handshake tried: {lines:?}\n{}",
        both(&refused)
    );
    drop(endpoint);

    // The image's bundle plus the test CA (as an operator's company CA would be added).
    let bundle = work.path().join("ca-certificates.crt");
    let mut pem = std::fs::read_to_string(image().rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    pem.push_str(&std::fs::read_to_string(pki.join("ca.crt")).unwrap());
    std::fs::write(&bundle, pem).unwrap();
    let endpoint = Endpoint::start(&pki);
    let out = plan_against(&endpoint, work.path(), Some(&bundle));
    let lines = endpoint.lines();
    // The static binary resolved the name through /etc/resolv.conf (glibc's built-in DNS module).
    assert!(lines.iter().any(|l| l.starts_with("DNS dynamodb")), "no DNS question: {lines:?}\n{}", both(&out));
    assert!(
        lines.iter().any(|l| l.starts_with("REQUEST POST / HTTP/1.1")),
        "no request got through: {lines:?}\n{}",
        both(&out)
    );
    // The endpoint's answer reached the operator: the whole round trip went over TLS.
    assert!(both(&out).contains("answered by the image test endpoint"), "{}", both(&out));
}

#[test]
fn the_dockerfile_builds_the_same_image() {
    let dockerfile = std::fs::read_to_string(project().join("Dockerfile")).expect("Dockerfile");
    let last_stage = dockerfile.rsplit_once("\nFROM ").map(|(_, s)| s).expect("a final FROM");
    assert!(last_stage.starts_with("scratch"), "the final stage adds nothing but what is copied");
    let config = &image().config["config"];
    let instruction = |name: &str| -> Vec<String> {
        last_stage.lines().filter_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_string)).collect()
    };
    assert_eq!(instruction("USER"), [config["User"].as_str().unwrap()]);
    assert_eq!(instruction("ENTRYPOINT"), [config["Entrypoint"].to_string().replace(',', ", ")]);
    assert_eq!(instruction("CMD"), [config["Cmd"].to_string().replace(',', ", ")]);
    for label in config["Labels"].as_object().unwrap().keys().filter(|k| !k.ends_with(".created")) {
        assert!(last_stage.contains(&format!("{label}=")), "the Dockerfile lacks the label {label}");
    }
    // The same content: image/rootfs/, Debian's bundle, a static binary.
    for needed in ["COPY image/rootfs/ /rootfs/", "/etc/ssl/certs/ca-certificates.crt", "+crt-static", "chmod 1777"] {
        assert!(dockerfile.contains(needed), "the Dockerfile does not {needed:?}");
    }
}
