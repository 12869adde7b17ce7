package publish

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/api/v1alpha1"
)

// The apply body built from the typed apply configuration is, as the apiserver reads it (YAML),
// the same document as the API object it stands for (which is what was sent before apply
// configurations were used): every field of the status, guest strings
// byte for byte, the resourceVersion precondition, and nothing else. No API server involved.
func TestStatusApplyBodyIsTheStatus(t *testing.T) {
	b := &builder{memory: DefaultThreshold, filesystem: DefaultThreshold, maxBytes: DefaultMaxStatusBytes}
	clk := newClock()
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 20 {
		d := sampleDesired("0123abcd-0000-4000-8000-0000000000aa", "apply")
		d.RunState = &RunState{State: "Paused", Reason: randomGuestString(r)}
		d.Agents.QGA.FSFreeze = guest.FreezeFrozen
		d.Info.Hostname.Name = randomGuestString(r)
		d.Info.OS.PrettyName = "\u0085" + randomGuestString(r) + "\u2028"
		for range 30 {
			d.Info.Applications.List = append(d.Info.Applications.List, randomGuestString(r))
		}
		d.Stale = map[guest.Group]bool{guest.GroupUsers: true}
		st := b.build(&d, nil, clk.at())
		if round%2 == 1 {
			st.Truncated = &v1alpha1.TruncationCounts{Strings: 3}
			st.Memory.FreeBytes = ptr.To[int64](0)
		}
		rv := []string{"", "12345"}[round%2]

		ac, err := statusApply("tenant", "apply-x", rv, st)
		if err != nil {
			t.Fatal(err)
		}
		body, err := applyBody(ac)
		if err != nil {
			t.Fatal(err)
		}
		want := &v1alpha1.GuestAgentStatus{Status: *st}
		want.APIVersion, want.Kind = v1alpha1.GroupVersion.String(), "GuestAgentStatus"
		want.Namespace, want.Name, want.ResourceVersion = "tenant", "apply-x", rv
		wantJSON, err := applyBody(want) // the API object, encoded as apply bodies were before

		if err != nil {
			t.Fatal(err)
		}
		got := decodeYAML(t, body)
		exp := decodeYAML(t, wantJSON)
		// The API object carries an empty spec and creationTimestamp that a status apply leaves out.
		delete(exp, "spec")
		delete(exp["metadata"].(map[string]any), "creationTimestamp")
		exp["metadata"].(map[string]any)["resourceVersion"] = rv
		if !reflect.DeepEqual(got, exp) {
			t.Fatalf("round %d: apply body\n%s\ndiffers from the status\n%s", round, body, wantJSON)
		}
		var back v1alpha1.GuestAgentStatus
		if err := json.Unmarshal(mustYAMLToJSON(t, body), &back); err != nil {
			t.Fatal(err)
		}
		if !semanticEqual(&back.Status, st) || back.Status.Hostname != st.Hostname ||
			back.Status.OS.PrettyName != st.OS.PrettyName {
			t.Fatalf("round %d: the status read back from the body differs", round)
		}
		if bytes.ContainsRune(body, '\u0085') {
			t.Fatalf("round %d: NEL sent verbatim: %q", round, body)
		}
	}
}

func mustYAMLToJSON(t *testing.T, body []byte) []byte {
	t.Helper()
	js, err := yaml.YAMLToJSON(body)
	if err != nil {
		t.Fatalf("the apiserver's decoder refuses the body %q: %v", body, err)
	}
	return js
}

func decodeYAML(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(mustYAMLToJSON(t, body), &m); err != nil {
		t.Fatal(err)
	}
	return m
}
