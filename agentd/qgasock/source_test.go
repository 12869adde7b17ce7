package qgasock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/qga"
	"guestagent.io/operator/agentd/virt"
	"guestagent.io/operator/internal/qgatest"
)

const (
	uWeb    = "11111111-1111-4111-8111-111111111111"
	uDB     = "22222222-2222-4222-8222-222222222222"
	uAbsent = "33333333-3333-4333-8333-333333333333"
	uEvil   = "44444444-4444-4444-8444-444444444444"
)

type recorder struct {
	mu  sync.Mutex
	evs []virt.Event
}

func (r *recorder) handle(ev virt.Event) { r.mu.Lock(); r.evs = append(r.evs, ev); r.mu.Unlock() }

// last is the newest event about uuid (zero when none).
func (r *recorder) last(uuid string) virt.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.evs) - 1; i >= 0; i-- {
		if r.evs[i].Domain.UUID == uuid {
			return r.evs[i]
		}
	}
	return virt.Event{}
}

func (r *recorder) count(uuid string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.evs {
		if ev.Domain.UUID == uuid {
			n++
		}
	}
	return n
}

func TestParseSocketName(t *testing.T) {
	for file, want := range map[string][2]string{
		"web_" + uWeb + ".sock":                             {"web", uWeb},
		"my_vm_1_11111111-1111-4111-8111-11111111111A.sock": {"my_vm_1", "11111111-1111-4111-8111-11111111111a"},
	} {
		n, u, ok := ParseSocketName(file)
		if !ok || n != want[0] || u != want[1] {
			t.Errorf("%s: %q %q %v", file, n, u, ok)
		}
	}
	for _, bad := range []string{"", "web.sock", "_" + uWeb + ".sock", "web-" + uWeb + ".sock", "web_" + uWeb, "web_" + uWeb + ".socket", "web_1111.sock"} {
		if _, _, ok := ParseSocketName(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestNewRejectsIncompleteEntries(t *testing.T) {
	api := qga.NewSocketAPI(nil)
	if _, err := New(Config{Prober: api, Domains: []Entry{{Name: "a", UUID: "nope", Socket: "/a"}}}); err == nil {
		t.Error("bad UUID accepted")
	}
	if _, err := New(Config{}); err == nil {
		t.Error("missing prober accepted")
	}
}

// Real qemu-ga agents behind a directory and a configured list: discovery, channel state from
// the probe, an agent that stops (list form: Disconnected, still there), a socket that is
// removed (directory form: gone), a hostile peer and stray files that hurt nobody.
func TestSourceWithHostAgents(t *testing.T) {
	qgatest.Require(t)
	g := NewWithT(t)
	dir := t.TempDir()
	other := t.TempDir()
	web := qgatest.Start(t, filepath.Join(dir, "web_"+uWeb+".sock"))
	db := qgatest.Start(t, filepath.Join(other, "db.sock"))
	qgatest.Hostile(t, filepath.Join(dir, "evil_"+uEvil+".sock"))
	qgatest.Hostile(t, filepath.Join(dir, "stray.sock")) // a socket without a UUID: ignored
	if err := os.WriteFile(filepath.Join(dir, "notes_"+uAbsent+".sock"), []byte("a file, not a socket"), 0o600); err != nil {
		t.Fatal(err)
	}

	api := qga.NewSocketAPI(nil)
	src, err := New(Config{
		Directory: dir,
		Domains: []Entry{
			{Name: "db", UUID: uDB, Socket: db.Socket},
			{Name: "absent", UUID: uAbsent, Socket: filepath.Join(other, "absent.sock")},
		},
		Interval: 100 * time.Millisecond, ProbeTimeout: 500 * time.Millisecond, Prober: api, Log: testr.New(t),
	})
	g.Expect(err).NotTo(HaveOccurred())
	api.Path = src.SocketPath
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- src.Run(ctx, rec.handle) }()
	t.Cleanup(func() { cancel(); g.Expect(<-done).To(Succeed()); _ = api.Close() })

	g.Eventually(src.Synced).WithTimeout(10 * time.Second).Should(BeTrue())
	g.Expect(src.Connected()).To(BeTrue())
	// first listing: everything at once, with the probe's outcome
	g.Expect(src.Domains()).To(HaveLen(4))
	for uuid, want := range map[string]guest.ChannelState{uWeb: guest.ChannelConnected, uDB: guest.ChannelConnected,
		uAbsent: guest.ChannelDisconnected, uEvil: guest.ChannelDisconnected} {
		ev := rec.last(uuid)
		g.Expect(ev.Type).To(Equal(virt.EventDomainAdded), uuid)
		g.Expect(ev.Lifecycle).To(Equal(virt.LifecycleDiscovered))
		g.Expect(ev.Domain.QGAChannel).To(Equal(want), uuid)
		g.Expect(ev.Domain.StateReason).To(Equal(StateReason))
		g.Expect(ev.Domain.Libvirt()).To(BeFalse())
		g.Expect(ev.Domain.HasQGAChannel).To(BeTrue())
		if want == guest.ChannelConnected {
			g.Expect(ev.Domain.State).To(Equal(virt.StateRunning))
		} else {
			g.Expect(ev.Domain.State).To(Equal(virt.StateUnknown))
		}
	}
	d, _ := src.Domain(uWeb)
	g.Expect(d.Name).To(Equal("web"))
	g.Expect(d.QGASocket).To(Equal(web.Socket))
	p, ok := src.SocketPath(uDB)
	g.Expect(ok).To(BeTrue())
	g.Expect(p).To(Equal(db.Socket))

	// the poller's calls and the probes share one connection per agent
	info, err := api.Raw(ctx, uWeb, qga.CmdInfo, time.Second)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(info)).To(ContainSubstring("guest-get-osinfo"))

	// the hostile peer, probed every round, never disturbed the others: still one event each
	g.Consistently(func() int { return rec.count(uWeb) + rec.count(uDB) }).WithTimeout(500 * time.Millisecond).Should(Equal(2))
	g.Expect(rec.count(uEvil)).To(Equal(1))

	// list form: the agent stops → Disconnected, Unknown, the domain stays
	db.Stop()
	g.Eventually(func() guest.ChannelState { return rec.last(uDB).Domain.QGAChannel }).WithTimeout(5 * time.Second).Should(Equal(guest.ChannelDisconnected))
	ev := rec.last(uDB)
	g.Expect(ev.Type).To(Equal(virt.EventAgentChannel))
	g.Expect(ev.Domain.State).To(Equal(virt.StateUnknown))
	_, ok = src.Domain(uDB)
	g.Expect(ok).To(BeTrue())
	// … and answers again once an agent listens there again
	qgatest.Start(t, db.Socket)
	g.Eventually(func() guest.ChannelState { return rec.last(uDB).Domain.QGAChannel }).WithTimeout(5 * time.Second).Should(Equal(guest.ChannelConnected))
	g.Expect(rec.last(uDB).Domain.State).To(Equal(virt.StateRunning))

	// directory form: the socket goes → the domain is removed
	web.Stop()
	g.Eventually(func() virt.EventType { return rec.last(uWeb).Type }).WithTimeout(5 * time.Second).Should(Equal(virt.EventDomainRemoved))
	_, ok = src.Domain(uWeb)
	g.Expect(ok).To(BeFalse())
	_, err = api.Raw(ctx, uWeb, qga.CmdPing, time.Second)
	g.Expect(qga.ClassOf(err)).To(Equal(qga.ErrDomainNotRunning))
	var qe *qga.Error
	g.Expect(errors.As(err, &qe)).To(BeTrue())
}

// A directory socket with the UUID of a configured domain is ignored (the list wins).
func TestListWinsOverDirectory(t *testing.T) {
	qgatest.Require(t)
	g := NewWithT(t)
	dir := t.TempDir()
	listed := qgatest.Start(t, filepath.Join(t.TempDir(), "listed.sock"))
	qgatest.Start(t, filepath.Join(dir, "copy_"+uWeb+".sock"))
	api := qga.NewSocketAPI(nil)
	src, err := New(Config{Directory: dir, Domains: []Entry{{Name: "listed", UUID: uWeb, Socket: listed.Socket}},
		Interval: 100 * time.Millisecond, Prober: api, Log: testr.New(t)})
	g.Expect(err).NotTo(HaveOccurred())
	api.Path = src.SocketPath
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- src.Run(ctx, rec.handle) }()
	t.Cleanup(func() { cancel(); <-done; _ = api.Close() })
	g.Eventually(src.Synced).WithTimeout(10 * time.Second).Should(BeTrue())
	g.Expect(src.Domains()).To(HaveLen(1))
	d, _ := src.Domain(uWeb)
	g.Expect(d.Name).To(Equal("listed"))
	g.Expect(d.QGAChannel).To(Equal(guest.ChannelConnected))
}
