package oga

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestCommandWireBytes(t *testing.T) {
	h := newHarness(t, fastTiming())
	g := newRawGuest(t)
	a := h.l.Add("dom-1", g.path, 3)
	if got := g.next(t); got != `{"apiVersion": 3, "__name__": "refresh"}` {
		t.Fatalf("refresh on connect: %s", got)
	}
	ctx := context.Background()
	cases := []struct {
		send func() error
		want string
	}{
		{func() error { return a.Shutdown(ctx, 30*time.Second, "bye", false) }, `{"timeout": 30, "message": "bye", "reboot": "False", "__name__": "shutdown"}`},
		{func() error { return a.Shutdown(ctx, 1500*time.Millisecond, "é\"\n", true) }, `{"timeout": 2, "message": "\u00e9\"\n", "reboot": "True", "__name__": "shutdown"}`},
		{func() error { return a.LockScreen(ctx) }, `{"__name__": "lock-screen"}`},
		{func() error { return a.LogOff(ctx) }, `{"__name__": "log-off"}`},
		{func() error { return a.Hibernate(ctx, "") }, `{"state": "disk", "__name__": "hibernate"}`},
		{func() error { return a.Hibernate(ctx, HibernateMem) }, `{"state": "mem", "__name__": "hibernate"}`},
		{func() error { return a.LifecycleEvent(ctx, HookAfterMigration, false, false, 0) }, `{"type": "after_migration", "__name__": "lifecycle-event"}`},
		{func() error { return a.LifecycleEvent(ctx, HookAfterHibernation, true, false, 0) }, `{"type": "after_hibernation", "failure": true, "__name__": "lifecycle-event"}`},
		{func() error { return a.Shutdown(ctx, -time.Second, "😀", false) }, `{"timeout": 0, "message": "\ud83d\ude00", "reboot": "False", "__name__": "shutdown"}`},
	}
	for _, c := range cases {
		if err := c.send(); err != nil {
			t.Fatalf("%s: %v", c.want, err)
		}
		if got := g.next(t); got != c.want {
			t.Fatalf("got  %s\nwant %s", got, c.want)
		}
	}
}

// TestSetNumberOfCPUs: the command is gated at API version 1, and returns the count of the
// guest's next number-of-cpus report, or ErrNoCompletion when none comes.
func TestSetNumberOfCPUs(t *testing.T) {
	h := newHarness(t, fastTiming())
	g := newRawGuest(t)
	a := h.l.Add("dom-1", g.path, 0)
	g.next(t) // refresh
	ctx := context.Background()
	if _, err := a.SetNumberOfCPUs(ctx, 2, time.Second); !errors.Is(err, ErrUnsupportedByGuestVersion) {
		t.Fatalf("at API version 0: %v", err)
	}
	g.write(t, `{"__name__": "heartbeat", "free-ram": "1", "apiVersion": 1}`+"\n")
	if got := g.next(t); got != `{"apiVersion": 1, "__name__": "api-version"}` {
		t.Fatalf("negotiation: %s", got)
	}

	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := a.SetNumberOfCPUs(ctx, 2, 5*time.Second)
		done <- result{n, err}
	}()
	if got := g.next(t); got != `{"count": 2, "__name__": "set-number-of-cpus"}` {
		t.Fatalf("wire: %s", got)
	}
	g.write(t, `{"__name__": "number-of-cpus", "count": 3}`+"\n")
	if r := <-done; r.err != nil || r.n != 3 {
		t.Fatalf("SetNumberOfCPUs = %d, %v; want the reported 3", r.n, r.err)
	}
	if info := a.Info(); info.VCPUs == nil || info.VCPUs.Online != 3 {
		t.Fatalf("the report did not update the guest data: %+v", info.VCPUs)
	}

	// A guest that cannot tell reports -1; no report at all is ErrNoCompletion.
	go func() {
		n, err := a.SetNumberOfCPUs(ctx, 4, 5*time.Second)
		done <- result{n, err}
	}()
	g.next(t)
	g.write(t, `{"__name__": "number-of-cpus", "count": -1}`+"\n")
	if r := <-done; r.err != nil || r.n != -1 {
		t.Fatalf("SetNumberOfCPUs = %d, %v; want -1", r.n, r.err)
	}
	if _, err := a.SetNumberOfCPUs(ctx, 4, 20*time.Millisecond); !errors.Is(err, ErrNoCompletion) {
		t.Fatalf("without a report: %v", err)
	}
	g.next(t)
	a.mu.Lock()
	left := len(a.cpuWaiters)
	a.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d number-of-cpus waiters left", left)
	}
}

func TestLifecycleEventCompletionAndTimeout(t *testing.T) {
	h := newHarness(t, fastTiming())
	g := newRawGuest(t)
	a := h.l.Add("dom-1", g.path, 3)
	g.next(t) // refresh

	done := make(chan error, 1)
	go func() {
		done <- a.LifecycleEvent(context.Background(), HookBeforeMigration, false, true, 5*time.Second)
	}()
	line := g.next(t)
	const prefix = `{"type": "before_migration", "reply_id": "`
	if !strings.HasPrefix(line, prefix) || !strings.HasSuffix(line, `", "__name__": "lifecycle-event"}`) {
		t.Fatalf("wire: %s", line)
	}
	id := strings.TrimPrefix(line, prefix)[:36]
	if id[14] != '4' {
		t.Fatalf("reply_id not uuid4: %s", id)
	}
	g.write(t, `{"reply_id": "wrong", "done": true, "__name__": "completion"}`+"\n")
	select {
	case err := <-done:
		t.Fatalf("completed on wrong id: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	g.write(t, `{"reply_id": "`+id+`", "done": true, "__name__": "completion"}`+"\n")
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// No completion: distinct error.
	err := a.LifecycleEvent(context.Background(), HookBeforeHibernation, false, true, 100*time.Millisecond)
	if !errors.Is(err, ErrNoCompletion) {
		t.Fatalf("want ErrNoCompletion, got %v", err)
	}
	g.next(t)
}

func TestVersionGates(t *testing.T) {
	h := newHarness(t, fastTiming())
	g := newRawGuest(t)
	a := h.l.Add("dom-1", g.path, 0)
	g.next(t)
	ctx := context.Background()
	err := a.LifecycleEvent(ctx, HookBeforeMigration, false, true, time.Second)
	var ue *UnsupportedError
	if !errors.Is(err, ErrUnsupportedByGuestVersion) || !errors.As(err, &ue) || ue.Required != 3 || ue.Negotiated != 0 {
		t.Fatalf("lifecycle at 0: %v", err)
	}
	if _, err := a.SetNumberOfCPUs(ctx, 2, time.Second); !errors.Is(err, ErrUnsupportedByGuestVersion) {
		t.Fatalf("cpus at 0: %v", err)
	}
	// Heartbeat with 1 → api-version 1 sent; set-number-of-cpus allowed, lifecycle not.
	g.write(t, `{"__name__": "heartbeat", "free-ram": "1", "apiVersion": 1}`+"\n")
	if got := g.next(t); got != `{"apiVersion": 1, "__name__": "api-version"}` {
		t.Fatalf("negotiation: %s", got)
	}
	if a.APIVersion() != 1 {
		t.Fatal("api not 1")
	}
	// Sent; this guest never reports its count, so the wait ends without one.
	if _, err := a.SetNumberOfCPUs(ctx, 2, 20*time.Millisecond); !errors.Is(err, ErrNoCompletion) {
		t.Fatal(err)
	}
	if got := g.next(t); got != `{"count": 2, "__name__": "set-number-of-cpus"}` {
		t.Fatal(got)
	}
	if err := a.LifecycleEvent(ctx, HookAfterMigration, false, false, 0); !errors.Is(err, ErrUnsupportedByGuestVersion) {
		t.Fatalf("lifecycle at 1: %v", err)
	}
	// A drop to 0 sends nothing; the next line the guest sees is our own command.
	g.write(t, `{"__name__": "heartbeat", "free-ram": "1", "apiVersion": 0}`+"\n")
	NewWithT(t).Eventually(func() bool { return a.APIVersion() == 0 }).WithTimeout(waitTimeout).Should(BeTrue(), "api 0")
	_ = a.LockScreen(ctx)
	if got := g.next(t); got != `{"__name__": "lock-screen"}` {
		t.Fatalf("unexpected line after drop: %s", got)
	}
}

func TestNotConnected(t *testing.T) {
	tm := fastTiming()
	tm.FirstConnectWait = 5 * time.Second
	h := newHarness(t, tm)
	a := h.l.Add("dom-x", t.TempDir()+"/missing.sock", 3)
	start := time.Now()
	if err := a.LockScreen(context.Background()); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("got %v", err)
	}
	if time.Since(start) > 4*time.Second {
		t.Fatal("send waited beyond the first connect attempt")
	}
	NewWithT(t).Eventually(func() bool { return a.State().Channel == "Disconnected" }).WithTimeout(waitTimeout).Should(BeTrue(), "disconnected state")
	h.l.Remove("dom-x")
	if err := a.LogOff(context.Background()); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("after remove: %v", err)
	}
	if h.l.Add("dom-y", "", 0) != nil || h.l.Agent("dom-y") != nil {
		t.Fatal("empty path must mean no OGA")
	}
}
