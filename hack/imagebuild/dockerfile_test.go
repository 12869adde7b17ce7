package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// The images `make images` builds must be the images the Dockerfiles describe: the builder takes
// the final stage of each Dockerfile as its spec, and this test pins what that spec is, so a change
// to either side is seen here.
func TestProjectDockerfiles(t *testing.T) {
	for _, tc := range []struct {
		file string
		want Spec
	}{
		{"../../Dockerfile", Spec{
			Base:       "gcr.io/distroless/static:nonroot",
			Copies:     []Copy{{Stage: "build", Src: "/manager", Dst: "/manager"}},
			User:       "65532:65532",
			Entrypoint: []string{"/manager"},
		}},
		{"../../Dockerfile.agentd", Spec{
			Base:       "debian:bookworm-slim",
			Packages:   []string{"libvirt0", "ca-certificates"},
			Copies:     []Copy{{Stage: "build", Src: "/agentd", Dst: "/usr/local/bin/agentd"}},
			User:       "0:0",
			Entrypoint: []string{"/usr/local/bin/agentd"},
		}},
	} {
		f, err := os.Open(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseDockerfile(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.file, *got, tc.want)
		}
		if _, ok := bases[got.Base]; !ok {
			t.Errorf("%s: base %q cannot be reproduced", tc.file, got.Base)
		}
	}
}

func TestParseDockerfileRejectsWhatItCannotReproduce(t *testing.T) {
	for _, df := range []string{
		"FROM a AS build\nRUN make\nFROM b\nRUN curl x | sh\nENTRYPOINT [\"/x\"]\n",
		"FROM b\nADD x /x\nENTRYPOINT [\"/x\"]\n",
		"FROM b\nCOPY x /x\nENTRYPOINT [\"/x\"]\n",
		"FROM b\nENTRYPOINT /x\n",
		"FROM b\nUSER 1\n",
		"# nothing\n",
	} {
		if s, err := ParseDockerfile(strings.NewReader(df)); err == nil {
			t.Errorf("accepted %q as %+v", df, s)
		}
	}
}

func TestParseDockerfileFinalStageOnly(t *testing.T) {
	df := "FROM golang AS build\nRUN go build \\\n  -o /x .\nFROM debian:bookworm-slim\n# libs\nRUN apt-get update && apt-get install -y --no-install-recommends \\\n  libfoo1 bar && rm -rf /var/lib/apt/lists/*\nCOPY --from=build /x /usr/bin/x\nUSER 10:10\nENTRYPOINT [\"/usr/bin/x\", \"-v\"]\n"
	got, err := ParseDockerfile(strings.NewReader(df))
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{Base: "debian:bookworm-slim", Packages: []string{"libfoo1", "bar"},
		Copies: []Copy{{"build", "/x", "/usr/bin/x"}}, User: "10:10", Entrypoint: []string{"/usr/bin/x", "-v"}}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("got %+v want %+v", *got, want)
	}
}
