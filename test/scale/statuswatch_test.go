package scale

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gav1 "guestagent.io/operator/api/v1alpha1"
)

// statusWatch records what really changed in the published statuses during the window: it
// snapshots every object's status, then watches the objects and diffs each MODIFIED event's
// status against the previous one. The snapshot is kept in a file (only offsets in memory), so
// that the measured process's RSS does not grow by N statuses; only statuses that changed in the
// window are held in memory. It runs in the test process (its watch and event decoding are part
// of the measured CPU and add ~2 goroutines), so it is used only where writes are expected.
type statusWatch struct {
	snap    *os.File
	offsets map[string][2]int64 // object name → offset, length of its status JSON in snap
	w       watch.Interface
	done    chan struct{}
	closing atomic.Bool // stop called: the error event of the closed stream is not a finding

	mu       sync.Mutex
	latest   map[string][]byte // status JSON of objects that changed in the window
	changes  int               // MODIFIED events whose status differs from the previous one
	same     int               // MODIFIED events with an identical status (metadata only)
	other    []string          // ADDED / DELETED / ERROR events
	objects  map[string]bool   // objects that changed
	fields   map[string]int    // changed status path → events
	examples map[string]string // changed status path → one example (object: old → new)
}

// nodeList lists this node's objects page by page (bounded transient memory) and calls fn for
// each; it returns the list's resourceVersion.
func nodeList(ctx context.Context, c client.Client, fn func(*gav1.GuestAgentStatus) error) (string, error) {
	var rv, cont string
	for {
		var l gav1.GuestAgentStatusList
		if err := c.List(ctx, &l, client.InNamespace(defaultNS), client.MatchingLabels{gav1.LabelNode: nodeName},
			client.Limit(100), client.Continue(cont)); err != nil {
			return "", err
		}
		if rv == "" {
			rv = l.ResourceVersion
		}
		for i := range l.Items {
			if err := fn(&l.Items[i]); err != nil {
				return "", err
			}
		}
		if cont = l.Continue; cont == "" {
			return rv, nil
		}
	}
}

func startStatusWatch(t testing.TB, ctx context.Context) *statusWatch {
	t.Helper()
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := os.Create(filepath.Join(t.TempDir(), "statuses.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	sw := &statusWatch{snap: snap, offsets: map[string][2]int64{}, done: make(chan struct{}), latest: map[string][]byte{},
		objects: map[string]bool{}, fields: map[string]int{}, examples: map[string]string{}}
	var off int64
	rv, err := nodeList(ctx, c, func(o *gav1.GuestAgentStatus) error {
		b, err := json.Marshal(o.Status)
		if err != nil {
			return err
		}
		if _, err := snap.Write(b); err != nil {
			return err
		}
		sw.offsets[o.Name] = [2]int64{off, int64(len(b))}
		off += int64(len(b))
		return nil
	})
	if err != nil {
		_ = snap.Close()
		t.Fatalf("status snapshot: %v", err)
	}
	sw.w, err = c.Watch(ctx, &gav1.GuestAgentStatusList{}, &client.ListOptions{
		Namespace:     defaultNS,
		LabelSelector: labels.SelectorFromSet(labels.Set{gav1.LabelNode: nodeName}),
		Raw:           &metav1.ListOptions{ResourceVersion: rv},
	})
	if err != nil {
		_ = snap.Close()
		t.Fatalf("status watch: %v", err)
	}
	go func() {
		defer close(sw.done)
		for ev := range sw.w.ResultChan() {
			sw.handle(ev)
		}
	}()
	return sw
}

// stop ends the watch; the figures are final afterwards.
func (sw *statusWatch) stop() {
	sw.closing.Store(true)
	sw.w.Stop()
	<-sw.done
	_ = sw.snap.Close()
}

func (sw *statusWatch) previous(name string) []byte {
	if b, ok := sw.latest[name]; ok {
		return b
	}
	o, ok := sw.offsets[name]
	if !ok {
		return nil
	}
	b := make([]byte, o[1])
	if _, err := sw.snap.ReadAt(b, o[0]); err != nil && err != io.EOF {
		return nil
	}
	return b
}

func (sw *statusWatch) handle(ev watch.Event) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	obj, ok := ev.Object.(*gav1.GuestAgentStatus)
	if ev.Type == watch.Error && sw.closing.Load() {
		return
	}
	if !ok || ev.Type != watch.Modified {
		desc := fmt.Sprintf("%s %T", ev.Type, ev.Object)
		if ok {
			desc = fmt.Sprintf("%s %s", ev.Type, obj.Name)
		} else if st, ok := ev.Object.(*metav1.Status); ok {
			desc = fmt.Sprintf("%s %s", ev.Type, st.Message)
		}
		sw.other = append(sw.other, desc)
		return
	}
	now, err := json.Marshal(obj.Status)
	if err != nil {
		sw.other = append(sw.other, fmt.Sprintf("%s %s: %v", ev.Type, obj.Name, err))
		return
	}
	prev := sw.previous(obj.Name)
	sw.latest[obj.Name] = now
	if bytes.Equal(prev, now) {
		sw.same++
		return
	}
	sw.changes++
	sw.objects[obj.Name] = true
	var a, b any
	_ = json.Unmarshal(prev, &a)
	_ = json.Unmarshal(now, &b)
	diffJSON("status", a, b, func(path string, x, y any) {
		sw.fields[path]++
		if _, ok := sw.examples[path]; !ok {
			sw.examples[path] = fmt.Sprintf("%s: %s → %s", obj.Name, short(x), short(y))
		}
	})
}

// diffJSON calls fn for every path where a and b (decoded JSON) differ. List elements are
// compared index by index ("[]" in the path); lists of different length are one difference at
// the list's path.
func diffJSON(path string, a, b any, fn func(path string, x, y any)) {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			fn(path, a, b)
			return
		}
		keys := map[string]bool{}
		for k := range av {
			keys[k] = true
		}
		for k := range bv {
			keys[k] = true
		}
		for k := range keys {
			diffJSON(path+"."+k, av[k], bv[k], fn)
		}
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			fn(path+" (length)", a, b)
			return
		}
		for i := range av {
			diffJSON(path+"[]", av[i], bv[i], fn)
		}
	default:
		if !reflect.DeepEqual(a, b) {
			fn(path, a, b)
		}
	}
}

func short(v any) string {
	if v == nil {
		return "(absent)"
	}
	b, _ := json.Marshal(v)
	if len(b) > 160 {
		return string(b[:160]) + "…"
	}
	return string(b)
}

// watchReport is what the watch saw.
type watchReport struct {
	changes, same, objects int
	other                  []string
	fields                 []string // "path: events (example)", most frequent first
}

func (sw *statusWatch) report() watchReport {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	r := watchReport{changes: sw.changes, same: sw.same, objects: len(sw.objects), other: slices.Clone(sw.other)}
	paths := make([]string, 0, len(sw.fields))
	for p := range sw.fields {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool {
		if sw.fields[paths[i]] != sw.fields[paths[j]] {
			return sw.fields[paths[i]] > sw.fields[paths[j]]
		}
		return paths[i] < paths[j]
	})
	for _, p := range paths {
		r.fields = append(r.fields, fmt.Sprintf("%s: %d (e.g. %s)", p, sw.fields[p], sw.examples[p]))
	}
	return r
}

// qgaDataCheck lists this node's objects and returns how many lack QGA-sourced data (agent
// version, OS): with real agents every domain must have them.
func qgaDataCheck(t testing.TB, ctx context.Context) (objects int, lacking []string) {
	t.Helper()
	_, err := nodeList(ctx, env.Client, func(o *gav1.GuestAgentStatus) error {
		objects++
		if q := o.Status.QemuAgent; q == nil || q.Version == "" || o.Status.OS == nil || o.Status.Hostname == "" {
			if len(lacking) < 5 {
				b, _ := json.Marshal(o.Status)
				lacking = append(lacking, fmt.Sprintf("%s: %.300s", o.Name, b))
			} else {
				lacking = append(lacking, o.Name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing statuses: %v", err)
	}
	return objects, lacking
}

// graceAfterWindow lets watch events of writes made just before the window closed arrive.
const graceAfterWindow = 2 * time.Second

func joinIndented(ss []string) string {
	if len(ss) == 0 {
		return " none"
	}
	return "\n    " + strings.Join(ss, "\n    ")
}
