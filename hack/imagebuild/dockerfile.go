package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Spec is what the final stage of one of the project's Dockerfiles says about the image: the base,
// the Debian packages installed on it, the files copied from the build stage, the user and the
// entrypoint. The builder reproduces exactly this; an instruction it does not understand is an
// error, so a Dockerfile change cannot silently make the two images differ.
type Spec struct {
	Base       string
	Packages   []string
	Copies     []Copy
	User       string
	Entrypoint []string
}

// Copy is a `COPY --from=<stage> <src> <dst>` of the final stage.
type Copy struct {
	Stage, Src, Dst string
}

var aptInstall = regexp.MustCompile(`^apt-get update && apt-get install -y --no-install-recommends ([a-z0-9.+\- ]+) && rm -rf /var/lib/apt/lists/\*$`)

// ParseDockerfile reads a Dockerfile and returns the spec of its final stage.
func ParseDockerfile(r io.Reader) (*Spec, error) {
	var lines []string
	sc := bufio.NewScanner(r)
	var cur strings.Builder
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || (l == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(l, `\`) {
			cur.WriteString(strings.TrimSuffix(l, `\`))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(l)
		if s := strings.Join(strings.Fields(cur.String()), " "); s != "" {
			lines = append(lines, s)
		}
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	last := -1
	for i, l := range lines {
		if strings.EqualFold(firstWord(l), "FROM") {
			last = i
		}
	}
	if last < 0 {
		return nil, fmt.Errorf("no FROM instruction")
	}
	spec := &Spec{User: "0:0"}
	for _, l := range lines[last:] {
		word, rest := firstWord(l), strings.TrimSpace(l[len(firstWord(l)):])
		switch strings.ToUpper(word) {
		case "FROM":
			f := strings.Fields(rest)
			if len(f) != 1 {
				return nil, fmt.Errorf("final stage %q: want `FROM <image>`", l)
			}
			spec.Base = f[0]
		case "RUN":
			m := aptInstall.FindStringSubmatch(rest)
			if m == nil {
				return nil, fmt.Errorf("unsupported RUN in the final stage (only `apt-get update && apt-get install -y --no-install-recommends PKGS && rm -rf /var/lib/apt/lists/*`): %q", rest)
			}
			spec.Packages = append(spec.Packages, strings.Fields(m[1])...)
		case "COPY":
			f := strings.Fields(rest)
			if len(f) != 3 || !strings.HasPrefix(f[0], "--from=") {
				return nil, fmt.Errorf("unsupported COPY in the final stage (only `COPY --from=<stage> <src> <dst>`): %q", rest)
			}
			spec.Copies = append(spec.Copies, Copy{Stage: strings.TrimPrefix(f[0], "--from="), Src: f[1], Dst: f[2]})
		case "USER":
			spec.User = rest
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &spec.Entrypoint); err != nil || len(spec.Entrypoint) == 0 {
				return nil, fmt.Errorf("ENTRYPOINT must be a non-empty JSON array: %q", rest)
			}
		default:
			return nil, fmt.Errorf("unsupported instruction in the final stage: %q", l)
		}
	}
	if spec.Entrypoint == nil {
		return nil, fmt.Errorf("the final stage has no ENTRYPOINT")
	}
	return spec, nil
}

func firstWord(l string) string {
	if i := strings.IndexByte(l, ' '); i >= 0 {
		return l[:i]
	}
	return l
}
