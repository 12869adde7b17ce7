package publish

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"guestagent.io/operator/agentd/guest"
)

// tricky are code points and sequences that JSON carries verbatim but YAML (the apply patch's
// format) treats specially: line breaks it folds (NEL, LS, PS, CR), characters its reader refuses
// (C1 controls, DEL), the BOM, and YAML indicators and keywords.
var tricky = []string{
	"\u0085", "\u2028", "\u2029", "\r", "\r\n", "\n", "\t", "\ufeff", "\u0080", "\u009f", "\x7f", "\ufffd",
	"\U0001F600", "\U0010FFFD", "\ud7ff", "\ue000", "\u00a0", "\x00", "\x1b", "\xff", "\xc2", "\xed\xa0\x80",
	": ", "- ", "#", "'", `"`, `\`, `\u0085`, "&a", "*a", "!!binary ", "%YAML", "@", "`", "{", "}", "[", "]",
	",", "?", "|", ">", "~", " ", "  ", "null", "true", "no", "yes", "0x1F", "1e3", "0o17", ".inf", "---", "...",
	"<<", "=", "\u3000", "é", "€",
}

// randomGuestString builds a string from tricky pieces, random code points of every plane and
// random bytes, then applies the guest filter: the result is a string agentd may publish.
func randomGuestString(r *rand.Rand) string {
	var b strings.Builder
	for n := r.IntN(12); n > 0; n-- {
		switch r.IntN(5) {
		case 0, 1:
			b.WriteString(tricky[r.IntN(len(tricky))])
		case 2:
			b.WriteRune(rune(r.IntN(0x100)))
		case 3:
			b.WriteRune(rune(r.IntN(utf8.MaxRune + 1)))
		default:
			b.WriteByte(byte(r.IntN(0x100)))
		}
	}
	return guest.FilterText(b.String())
}

// Any string that passes the guest filter reads back from the apiserver byte for byte, through
// the real publisher (its apply patch) and the real apiserver.
func TestGuestStringsRoundTrip(t *testing.T) {
	needEnv(t)
	p := startPublisher(t, nodeA, newCounting())
	r := rand.New(rand.NewPCG(15, 10))
	uuid := newUUID()
	const rounds = 8
	for round := range rounds {
		d := sampleDesired(uuid, "roundtrip")
		var apps []string
		if round == 0 { // every tricky piece alone and wrapped, so each one is checked on its own
			for _, s := range tricky {
				s = guest.FilterText(s)
				apps = append(apps, s, "a"+s+"b")
			}
		}
		for len(apps) < 400 {
			apps = append(apps, randomGuestString(r))
		}
		d.Info.Applications.List = apps
		d.Info.Hostname.Name = randomGuestString(r)
		d.Info.OS.PrettyName = "\u0085" + randomGuestString(r) + "\u0085"
		mustUpsert(t, p, d)
		settle(t, p)

		st := getStatus(t, nsDefault, ObjectName("roundtrip", uuid)).Status
		if st.Hostname != d.Info.Hostname.Name {
			t.Errorf("round %d: hostname %q read back as %q", round, d.Info.Hostname.Name, st.Hostname)
		}
		if st.OS == nil || st.OS.PrettyName != d.Info.OS.PrettyName {
			t.Errorf("round %d: prettyName %q read back as %+v", round, d.Info.OS.PrettyName, st.OS)
		}
		if !slices.Equal(st.Applications, apps) {
			for i := range min(len(apps), len(st.Applications)) {
				if apps[i] != st.Applications[i] {
					t.Errorf("round %d: application %d: wrote %q, read back %q", round, i, apps[i], st.Applications[i])
				}
			}
			if len(apps) != len(st.Applications) {
				t.Errorf("round %d: wrote %d applications, read back %d", round, len(apps), len(st.Applications))
			}
			t.FailNow()
		}
	}
}

// The apply body decodes, as the apiserver decodes it (YAML), to exactly the strings encoded.
func FuzzApplyBodyKeepsStrings(f *testing.F) {
	for _, s := range tricky {
		f.Add([]byte(s))
	}
	f.Add([]byte("line\u0085next\u2028sep\u2029end\ufeff"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var want []string
		for s := range strings.SplitSeq(string(in), "\x00") { // NUL cannot pass the filter anyway
			want = append(want, guest.FilterText(s))
		}
		body, err := applyBody(map[string]any{"status": map[string]any{"applications": want}})
		if err != nil {
			t.Fatal(err)
		}
		js, err := yaml.YAMLToJSON(body)
		if err != nil {
			t.Fatalf("the apiserver's decoder refuses the body %q: %v", body, err)
		}
		var got struct {
			Status struct {
				Applications []string `json:"applications"`
			} `json:"status"`
		}
		if err := json.Unmarshal(js, &got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Status.Applications, want) {
			t.Fatalf("wrote %q, decoded %q", want, got.Status.Applications)
		}
	})
}
