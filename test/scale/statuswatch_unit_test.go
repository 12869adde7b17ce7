package scale

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	gav1 "guestagent.io/operator/api/v1alpha1"
)

// TestStatusWatchDiff checks the status diff of GA_SCALE_QGA=qemu-ga runs on synthetic watch
// events (no control plane: it runs without GA_SCALE).
func TestStatusWatchDiff(t *testing.T) {
	obj := func(name string, st gav1.GuestAgentStatusStatus) *gav1.GuestAgentStatus {
		return &gav1.GuestAgentStatus{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: st}
	}
	base := gav1.GuestAgentStatusStatus{Hostname: "vm", VCPUs: ptr.To[int32](2),
		Users:      []gav1.GuestUser{{Name: "root"}},
		Interfaces: []gav1.GuestInterface{{Name: "eth0", IPv4: []string{"192.0.2.2/24"}}}}

	snap, err := os.Create(filepath.Join(t.TempDir(), "snap"))
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	sw := &statusWatch{snap: snap, offsets: map[string][2]int64{}, latest: map[string][]byte{},
		objects: map[string]bool{}, fields: map[string]int{}, examples: map[string]string{}}
	var off int64
	for _, name := range []string{"a", "b"} {
		b, _ := json.Marshal(base)
		if _, err := snap.Write(b); err != nil {
			t.Fatal(err)
		}
		sw.offsets[name] = [2]int64{off, int64(len(b))}
		off += int64(len(b))
	}

	changed := *base.DeepCopy()
	changed.Interfaces[0].IPv4 = []string{"192.0.2.3/24"}
	changed.Users = append(changed.Users, gav1.GuestUser{Name: "bob"})
	back := *changed.DeepCopy()
	back.VCPUs = ptr.To[int32](1)

	sw.handle(watch.Event{Type: watch.Modified, Object: obj("a", base)})    // metadata only
	sw.handle(watch.Event{Type: watch.Modified, Object: obj("a", changed)}) // 2 fields
	sw.handle(watch.Event{Type: watch.Modified, Object: obj("a", back)})    // against the latest, not the snapshot: 1 field
	sw.handle(watch.Event{Type: watch.Modified, Object: obj("b", changed)})
	sw.handle(watch.Event{Type: watch.Deleted, Object: obj("b", changed)})
	sw.handle(watch.Event{Type: watch.Modified, Object: obj("c", base)}) // not in the snapshot: all new

	r := sw.report()
	if r.changes != 4 || r.same != 1 || r.objects != 3 || len(r.other) != 1 || !strings.HasPrefix(r.other[0], "DELETED b") {
		t.Errorf("report = %+v", r)
	}
	count := map[string]string{}
	for _, f := range r.fields {
		p, rest, _ := strings.Cut(f, ": ")
		count[p] = strings.SplitN(rest, " ", 2)[0]
	}
	// a: 1 (ipv4) + 1 (users) + 1 (vcpus, against a's latest); b: 1 + 1; c: the whole status
	want := map[string]string{"status.interfaces[].ipv4[]": "2", "status.users (length)": "2", "status.vcpus": "1", "status": "1"}
	if len(count) != len(want) {
		t.Errorf("fields %v, want %v", r.fields, want)
	}
	for p, n := range want {
		if count[p] != n {
			t.Errorf("%s: %q events, want %s (fields %v)", p, count[p], n, r.fields)
		}
	}
	if i := slices.IndexFunc(r.fields, func(f string) bool { return strings.HasPrefix(f, "status.vcpus:") }); i < 0 ||
		!strings.Contains(r.fields[i], "a: 2 → 1") {
		t.Errorf("vcpus example: %v", r.fields)
	}
}
