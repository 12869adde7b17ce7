// Command imagebuild builds the project's container images without a Docker engine or a registry:
// it reads the final stage of a Dockerfile (base, Debian packages, files copied from the build
// stage, user, entrypoint), reproduces it from Debian packages and locally built binaries, and writes
// a docker-archive tarball that `ctr images import` (or `docker load`) takes.
//
//	imagebuild -dockerfile Dockerfile.agentd -artifact /agentd=bin/agentd -tag guestagent/agentd:dev -o bin/images/agentd.tar
//	imagebuild -binary bin/pause=/pause -entrypoint /pause -user 65535:65535 -tag guestagent.local/pause:1 -o bin/images/pause.tar
//
// The second form makes a one-file image (no base) for small static test programs.
package main

import (
	"archive/tar"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type pairs []string

func (p *pairs) String() string     { return strings.Join(*p, ",") }
func (p *pairs) Set(v string) error { *p = append(*p, v); return nil }

func main() {
	var (
		dockerfile = flag.String("dockerfile", "", "Dockerfile whose final stage describes the image")
		artifacts  pairs
		binaries   pairs
		entrypoint = flag.String("entrypoint", "", "entrypoint of a one-file image (without -dockerfile)")
		user       = flag.String("user", "65532:65532", "user of a one-file image (without -dockerfile)")
		tag        = flag.String("tag", "", "image reference, e.g. guestagent/agentd:dev")
		out        = flag.String("o", "", "output docker-archive tarball")
		debs       = flag.String("debs", "bin/images/debs", "cache of downloaded Debian packages")
	)
	flag.Var(&artifacts, "artifact", "STAGEPATH=LOCALFILE: the local file standing for a path of the Dockerfile's build stage (repeatable)")
	flag.Var(&binaries, "binary", "LOCALFILE=PATH: a file of a one-file image (repeatable)")
	flag.Parse()
	if err := run(*dockerfile, artifacts, binaries, *entrypoint, *user, *tag, *out, *debs); err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

func run(dockerfile string, artifacts, binaries pairs, entrypoint, user, tag, out, debs string) error {
	if tag == "" || out == "" {
		return fmt.Errorf("-tag and -o are required")
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("-tag: %w", err)
	}
	root, err := os.MkdirTemp("", "imagebuild-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)

	var spec *Spec
	var pkgs []string
	if dockerfile != "" {
		f, err := os.Open(dockerfile)
		if err != nil {
			return err
		}
		spec, err = ParseDockerfile(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", dockerfile, err)
		}
		local, err := parsePairs(artifacts)
		if err != nil {
			return fmt.Errorf("-artifact: %w", err)
		}
		if pkgs, err = buildRootfs(spec, root, debs); err != nil {
			return err
		}
		for _, c := range spec.Copies {
			src, ok := local[c.Src]
			if !ok {
				return fmt.Errorf("%s copies %s from stage %q: give the local file with -artifact %s=FILE", dockerfile, c.Src, c.Stage, c.Src)
			}
			delete(local, c.Src)
			if err := copyFile(src, filepath.Join(root, c.Dst)); err != nil {
				return err
			}
		}
		for k := range local {
			return fmt.Errorf("-artifact %s: the Dockerfile's final stage copies no such file", k)
		}
	} else {
		if entrypoint == "" || len(binaries) == 0 {
			return fmt.Errorf("without -dockerfile, -binary and -entrypoint are required")
		}
		files, err := parsePairs(binaries)
		if err != nil {
			return fmt.Errorf("-binary: %w", err)
		}
		for src, dst := range files {
			if err := copyFile(src, filepath.Join(root, dst)); err != nil {
				return err
			}
		}
		spec = &Spec{User: user, Entrypoint: []string{entrypoint}}
	}

	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeTar(root, pw)) }()
		return pr, nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{
		User:       spec.User,
		Entrypoint: spec.Entrypoint,
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Labels:     map[string]string{"io.guestagent.image.base": spec.Base, "io.guestagent.image.packages": strings.Join(pkgs, ",")},
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := tarball.WriteToFile(out, ref, img); err != nil {
		return err
	}
	digest, _ := img.Digest()
	fmt.Printf("imagebuild: %s %s (%d Debian packages) -> %s\n", ref, digest, len(pkgs), out)
	return nil
}

func parsePairs(p pairs) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range p {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%q: want A=B", kv)
		}
		m[k] = v
	}
	// -artifact is STAGEPATH=LOCAL, -binary is LOCAL=PATH: both keyed by their left side.
	return m, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

// writeTar writes dir as one reproducible layer: sorted, owned by the files' uid/gid, mtime 0.
func writeTar(dir string, w io.Writer) error {
	var paths []string
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil && p != dir {
			paths = append(paths, p)
		}
		return err
	}); err != nil {
		return err
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = zeroTime, zeroTime, zeroTime
		hdr.Uname, hdr.Gname = "", ""
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return err
			}
		}
	}
	return tw.Close()
}
