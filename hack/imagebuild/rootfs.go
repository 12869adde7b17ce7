package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Bases the builder can reproduce without a registry, and the Debian release each stands for.
// distroless/static is a Debian-based image too: passwd, group, /tmp, CA certificates and time
// zones, no shell and no libc.
var bases = map[string]struct {
	release   string
	libc      bool // the base carries libc6 (and so the dynamic loader)
	nonroot   bool // the base declares the nonroot user (65532)
	debianPkg []string
}{
	"debian:bookworm-slim":             {release: "bookworm", libc: true},
	"gcr.io/distroless/static:nonroot": {release: "bookworm", nonroot: true, debianPkg: []string{"ca-certificates", "tzdata"}},
}

// dataOnly packages are taken for their files alone: their dependencies (openssl, debconf, perl)
// only serve maintainer scripts, which are not run; the builder does their job (the CA bundle).
var dataOnly = map[string]bool{"ca-certificates": true, "tzdata": true}

// skipped paths of extracted packages: documentation the image does not need.
var skipped = []string{"usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/lintian/", "usr/share/locale/"}

// buildRootfs fills dir with the base and the packages of spec, taken from Debian packages of the
// host's release (the versions installed on the host where there is one, so that a binary built
// here runs against the libraries it was linked with).
func buildRootfs(spec *Spec, dir, debCache string) ([]string, error) {
	b, ok := bases[spec.Base]
	if !ok {
		return nil, fmt.Errorf("base image %q is not one the builder can reproduce (known: %s)", spec.Base, strings.Join(sortedKeys(), ", "))
	}
	if rel := hostRelease(); rel != b.release {
		return nil, fmt.Errorf("base %q is Debian %s but this host is %q: build on a %s host", spec.Base, b.release, rel, b.release)
	}
	var roots, data []string
	if b.libc {
		roots = append(roots, "libc6")
	}
	for _, p := range append(append([]string{}, b.debianPkg...), spec.Packages...) {
		if dataOnly[p] {
			data = append(data, p)
		} else {
			roots = append(roots, p)
		}
	}
	pkgs := data
	if len(roots) > 0 {
		closure, err := dependencyClosure(roots)
		if err != nil {
			return nil, err
		}
		pkgs = append(pkgs, closure...)
	}
	sort.Strings(pkgs)
	if err := os.MkdirAll(debCache, 0o755); err != nil {
		return nil, err
	}
	for _, p := range pkgs {
		deb, err := download(p, debCache)
		if err != nil {
			return nil, err
		}
		if out, err := exec.Command("dpkg-deb", "-x", deb, dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("dpkg-deb -x %s: %v: %s", deb, err, out)
		}
	}
	for _, s := range skipped {
		if err := os.RemoveAll(filepath.Join(dir, s)); err != nil {
			return nil, err
		}
	}
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n"
	group := "root:x:0:\n"
	if b.nonroot {
		passwd += "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
		group += "nonroot:x:65532:\n"
		if err := os.MkdirAll(filepath.Join(dir, "home/nonroot"), 0o700); err != nil {
			return nil, err
		}
		if err := os.Chown(filepath.Join(dir, "home/nonroot"), 65532, 65532); err != nil {
			return nil, err
		}
	}
	for name, content := range map[string]string{"etc/passwd": passwd, "etc/group": group} {
		if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o777); err != nil {
		return nil, err
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return nil, err
	}
	return pkgs, caBundle(dir)
}

// caBundle does what update-ca-certificates does at install: one PEM file of every certificate
// the ca-certificates package ships.
func caBundle(dir string) error {
	certs, _ := filepath.Glob(filepath.Join(dir, "usr/share/ca-certificates/*/*.crt"))
	if len(certs) == 0 {
		return nil
	}
	sort.Strings(certs)
	var buf bytes.Buffer
	for _, c := range certs {
		b, err := os.ReadFile(c)
		if err != nil {
			return err
		}
		buf.Write(bytes.TrimSpace(b))
		buf.WriteByte('\n')
	}
	if err := os.MkdirAll(filepath.Join(dir, "etc/ssl/certs"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "etc/ssl/certs/ca-certificates.crt"), buf.Bytes(), 0o644)
}

// dependencyClosure lists roots and everything they depend on (Depends and Pre-Depends, no
// recommendations), as apt resolves it.
func dependencyClosure(roots []string) ([]string, error) {
	args := append([]string{"depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
		"--no-breaks", "--no-replaces", "--no-enhances"}, roots...)
	out, err := exec.Command("apt-cache", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("apt-cache depends %s: %w (run `apt-get update` first)", strings.Join(roots, " "), err)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, " ") || strings.HasPrefix(l, "<") {
			continue // dependency lines, and virtual packages (one of their providers is listed too)
		}
		seen[strings.TrimSpace(l)] = true
	}
	var pkgs []string
	for p := range seen {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	return pkgs, nil
}

// download fetches one package into cache and returns the .deb's path: the version installed on
// the host if the archive still has it (a binary built here then runs against the very libraries
// it was linked with), else apt's candidate, which must not be older than the host's (libraries
// of one Debian release stay compatible upwards).
func download(pkg, cache string) (string, error) {
	hostVer := ""
	if v, err := exec.Command("dpkg-query", "-W", "-f=${Status} ${Version}", pkg).Output(); err == nil {
		if f := strings.Fields(string(v)); len(f) == 4 && f[2] == "installed" {
			hostVer = f[3]
		}
	}
	if hostVer != "" {
		if deb, err := fetch(pkg, hostVer, cache); err == nil {
			return deb, nil
		}
	}
	deb, err := fetch(pkg, "", cache)
	if err != nil {
		return "", err
	}
	if hostVer != "" {
		out, err := exec.Command("dpkg-deb", "-f", deb, "Version").Output()
		if err != nil {
			return "", fmt.Errorf("dpkg-deb -f %s: %w", deb, err)
		}
		got := strings.TrimSpace(string(out))
		if exec.Command("dpkg", "--compare-versions", got, "ge", hostVer).Run() != nil {
			return "", fmt.Errorf("%s: the archive has %s, older than the host's %s", pkg, got, hostVer)
		}
	}
	return deb, nil
}

// fetch downloads pkg (at version ver, or apt's candidate when ver is empty) unless cache has it.
func fetch(pkg, ver, cache string) (string, error) {
	want, name := pkg, pkg
	if ver != "" {
		want, name = pkg+"="+ver, pkg+"_"+ver
	}
	if m, _ := filepath.Glob(filepath.Join(cache, debGlob(name))); len(m) == 1 && ver != "" {
		return m[0], nil
	}
	cmd := exec.Command("apt-get", "download", "-q", want)
	cmd.Dir = cache
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download %s: %v: %s", want, err, out)
	}
	m, _ := filepath.Glob(filepath.Join(cache, debGlob(name)))
	if len(m) == 0 {
		return "", fmt.Errorf("apt-get download %s: no .deb in %s", want, cache)
	}
	sort.Strings(m)
	return m[len(m)-1], nil
}

// debGlob matches apt-get download's file name for "pkg" or "pkg_version" (an epoch's colon is
// written %3a).
func debGlob(name string) string {
	pkg, ver, ok := strings.Cut(name, "_")
	if !ok {
		return pkg + "_*.deb"
	}
	return pkg + "_" + strings.ReplaceAll(ver, ":", "%3a") + "_*.deb"
}

func hostRelease() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VERSION_CODENAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func sortedKeys() []string {
	var k []string
	for b := range bases {
		k = append(k, b)
	}
	sort.Strings(k)
	return k
}
