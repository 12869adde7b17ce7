package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/oga"
	"guestagent.io/operator/agentd/oga/ogafake"
	"guestagent.io/operator/agentd/publish"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// Sizes of the hostile flood. The bounds are derived from agentd's caps: per connection the
// framer holds less than oga.MaxMessageSize (1 MiB) of a partial line and nothing while it skips
// an oversized one, the decoder drops arenas and scratch buffers grown by a hostile line, the
// model keeps at most oga.MaxListEntries (4096) entries per list and the publisher caps a status
// at publish.DefaultMaxStatusBytes (512 KiB). What stays after this flood is one model of capped
// lists and a few copies (service view, publisher, informer caches) of a status under 512 KiB:
// a few MiB, far below the 64 MiB asserted while several times that much is sent. (The model
// does not cap string lengths: a guest filling every string field with 1 MiB of invalid UTF-8,
// each byte becoming a 3-byte U+FFFD, can make it hold about 3 MiB per message type. This
// flood's strings are shorter.)
const (
	hostilePartialLine   = 32 << 20         // one "endless" line: bytes written without any '\n'
	hostileMinBytes      = 128 << 20        // the flood goes on at least until this much was sent
	hostileMinFlood      = 10 * time.Second // ... and at least this long (load, not a timing assertion)
	hostileChunk         = 64 << 10         // write size of the flood
	heapGrowthLimit      = 64 << 20         // live heap growth allowed across the whole flood
	heapGrowthOpenLimit  = 16 << 20         // ... while a 32 MiB partial line is still open
	hostileListEntries   = 100_000          // entries of the hostile lists
	hostileBigApps       = 1100             // applications of 600 runes each (published: 1024 × 512)
	hostileBigFilesystem = 300              // filesystems with 1030-rune mountpoints (published: 256 × 1024)
	hostileRecovered     = "recovered.hostile.example"
)

// hostileHeartbeat keeps the hostile agent responsive (API version 3) while carrying hostile
// numbers: 2^64-1 KiB (saturates), 2^70, 1e400 and -1 where byte counts are expected. Only
// mem_total is usable.
const hostileHeartbeat = `{"__name__":"heartbeat","apiVersion":3,"free-ram":-1,"memory-stat":{` +
	`"mem_total":18446744073709551615,"mem_unused":1180591620717411303424,"mem_free":1e400,` +
	`"swap_total":-1,"swap_usage":1e400,"mem_buffers":-1e400}}`

// Invalid UTF-8, NUL and a lone surrogate inside otherwise valid messages, and what agentd
// must make of them: one U+FFFD per invalid byte or invalid code point.
const (
	hostileFQDNLine = "{\"__name__\":\"fqdn\",\"fqdn\":\"h\xffst\xc3(\\u0000\\ud800.example\"}"
	hostileFQDN     = "h\uFFFDst\uFFFD(\uFFFD\uFFFD.example"
	// overlong '/', a UTF-8 encoded surrogate; the line adds 300 invalid bytes: 313 runes.
	hostileUserRaw = "mallory\xc0\xaf\xed\xa0\x80-"
)

var hostileUser = "mallory" + strings.Repeat("\uFFFD", 5) + "-" + strings.Repeat("\uFFFD", 300)

// hostilePayloads are the big messages of the flood, built once before the baseline heap
// measurement and kept alive until the last one, so that they do not count as growth.
type hostilePayloads struct {
	chunk       []byte // hostileChunk bytes of 'x': the body of the endless line
	longLine    []byte // a host-name message of 1 MiB + 64 KiB, without '\n'
	boundaryOK  []byte // a valid line of exactly oga.MaxMessageSize bytes including '\n'
	boundaryBad []byte // the same plus one byte: oversized
	malformed   [][]byte
	lists       []hostileList
	bigApps     []byte
	bigDisks    []byte
}

// hostileList is a message with a 100,000-entry list and what agentd's model must keep of it.
type hostileList struct {
	name  string
	line  []byte
	check func(*guest.Info) error
}

func buildHostilePayloads(t *testing.T) *hostilePayloads {
	t.Helper()
	p := &hostilePayloads{chunk: bytes.Repeat([]byte("x"), hostileChunk)}
	p.longLine = fmt.Appendf(nil, `{"__name__":"host-name","name":"%s"}`, bytes.Repeat([]byte("y"), oga.MaxMessageSize+64<<10))
	pad := func(msg string, size int) []byte {
		b := bytes.Repeat([]byte(" "), size)
		copy(b, msg)
		b[size-1] = '\n'
		return b
	}
	p.boundaryOK = pad(`{"__name__":"host-name","name":"boundary-ok"}`, oga.MaxMessageSize)
	p.boundaryBad = pad(`{"__name__":"host-name","name":"boundary-too-long"}`, oga.MaxMessageSize+1)

	n := hostileListEntries
	rep := func(s string, k int) string { return strings.Repeat(s, k) }
	p.malformed = [][]byte{
		// 100,000 levels: valid JSON, far too deep.
		[]byte(`{"__name__":"applications","applications":` + rep("[", n) + rep("]", n) + `}`),
		[]byte(rep("[", n)),
		[]byte(`{"__name__":"os-info","type":` + rep(`{"a":`, n) + "1" + rep("}", n) + `}`),
		[]byte("{\"__name__\":\"host-name\",\"name\":\"ctl\x01\"}"), // raw control character
		[]byte(`[{"__name__":"host-name","name":"in-an-array"}]`),
		[]byte(`{"name":"no-name"}`),
		[]byte(`{"__name__":"host-name","name":"unterminated`),
		[]byte(`{"__name__":"heartbeat","free-ram":NaN}`),
		[]byte(`{"__name__":"host-name","name":"a"}{"__name__":"host-name","name":"b"}`),
		{},
	}

	var b strings.Builder
	// applications: 100,000 distinct names.
	b.WriteString(`{"__name__":"applications","applications":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"%d"`, i)
	}
	b.WriteString("]}")
	apps := b.String()
	// network-interfaces: 100,000 interfaces, the first with 100,000 IPv4 addresses.
	b.Reset()
	b.WriteString(`{"__name__":"network-interfaces","interfaces":[{"name":"eth0","hw":"52:54:00:AB:CD:EF","inet":["192.0.2.77"`)
	b.WriteString(rep(`,"1"`, n-1))
	b.WriteString(`],"inet6":[]}`)
	b.WriteString(rep(",{}", n-1))
	b.WriteString("]}")
	nics := b.String()
	// disks-usage: 100,000 filesystems, the first with sizes beyond uint64 and -1.
	disks := `{"__name__":"disks-usage","disks":[{"path":"/huge","fs":"ext4","total":1180591620717411303424,"used":-1}` +
		rep(",{}", n-1) + `],"mapping":{}}`
	// containers: 100,000 containers, the first with 100,000 names.
	containers := `{"__name__":"containers","list":[{"id":"c0","names":["n"` + rep(`,"n"`, n-1) + `]}` + rep(",{}", n-1) + `]}`
	p.lists = []hostileList{
		{"applications", []byte(apps), func(i *guest.Info) error {
			if i.Applications == nil || len(i.Applications.List) != oga.MaxListEntries {
				return fmt.Errorf("applications not capped to %d", oga.MaxListEntries)
			}
			return nil
		}},
		{"network-interfaces", []byte(nics), func(i *guest.Info) error {
			if i.Network == nil || len(i.Network.Interfaces) != oga.MaxListEntries ||
				len(i.Network.Interfaces[0].IPv4) != oga.MaxListEntries || i.Network.Interfaces[0].MAC != "52:54:00:ab:cd:ef" {
				return fmt.Errorf("interfaces or addresses not capped to %d", oga.MaxListEntries)
			}
			return nil
		}},
		{"disks-usage", []byte(disks), func(i *guest.Info) error {
			if i.Filesystems == nil || len(i.Filesystems.List) != oga.MaxListEntries || i.Filesystems.List[0].HasUsage {
				return fmt.Errorf("filesystems not capped to %d, or sizes beyond uint64 accepted", oga.MaxListEntries)
			}
			return nil
		}},
		{"containers", []byte(containers), func(i *guest.Info) error {
			if i.Containers == nil || len(i.Containers.List) != oga.MaxListEntries || len(i.Containers.List[0].Names) != oga.MaxListEntries {
				return fmt.Errorf("containers or names not capped to %d", oga.MaxListEntries)
			}
			return nil
		}},
	}

	// Lists whose strings, escaped by JSON ('<' becomes \u003c), make the status far larger than
	// its cap: the publisher's size guard must act.
	b.Reset()
	b.WriteString(`{"__name__":"applications","applications":[`)
	for i := range hostileBigApps {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"%04d%s"`, i, rep("<", 596))
	}
	b.WriteString("]}")
	p.bigApps = []byte(b.String())
	b.Reset()
	b.WriteString(`{"__name__":"disks-usage","disks":[{"path":"/","fs":"ext4","total":18446744073709551615,"used":18446744073709551615}`)
	for i := 1; i < hostileBigFilesystem; i++ {
		fmt.Fprintf(&b, `,{"path":"/%04d%s","fs":"xfs"}`, i, rep("<", 1025))
	}
	b.WriteString(`],"mapping":{`)
	for i := range hostileBigFilesystem {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"s%03d":{"name":"/dev/vd%d"}`, i, i)
	}
	b.WriteString("}}")
	p.bigDisks = []byte(b.String())

	all := [][]byte{p.bigApps, p.bigDisks}
	all = append(all, p.malformed...)
	for _, l := range p.lists {
		all = append(all, l.line)
	}
	for _, l := range all {
		if len(l)+1 > oga.MaxMessageSize {
			t.Fatalf("payload of %d bytes does not fit in one message", len(l))
		}
	}
	return p
}

// hostileGuest is the malicious side of one domain: a fake oVirt guest agent whose own periodic
// messages are slowed to once an hour, so that every byte it sends during the test is written
// here, one writer at a time, and agentd's per-domain counters can be predicted exactly. Its
// methods return errors instead of failing the test: they run on the flood goroutine.
type hostileGuest struct {
	g    *ogafake.Guest
	l    *oga.Listener
	uuid string
	sent atomic.Int64

	// Lines sent that agentd must drop or ignore, by counter.
	oversized, malformed, unknown int

	// Measured while the first endless line was still open.
	openHeap     uint64
	openSent     int64
	openWriteDur time.Duration
}

func (h *hostileGuest) raw(b []byte) error {
	if err := h.g.SendRaw(b); err != nil {
		return err
	}
	h.sent.Add(int64(len(b)))
	return nil
}

func (h *hostileGuest) line(b []byte) error { return h.raw(append(b[:len(b):len(b)], '\n')) }

// chunked writes b in hostileChunk pieces (the reader sees it arrive piecemeal).
func (h *hostileGuest) chunked(b []byte) error {
	for len(b) > 0 {
		n := min(len(b), hostileChunk)
		if err := h.raw(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// await polls agentd's model of the hostile domain until ok accepts it; it returns the failure
// (the flood's steps report errors, not test failures).
func (h *hostileGuest) await(ctx context.Context, what string, ok func(*guest.Info, oga.Stats) error) error {
	var failure error
	g := NewGomega(func(message string, _ ...int) { failure = errors.New(message) })
	g.Eventually(ctx, func() error {
		if a := h.l.Agent(h.uuid); a != nil {
			return ok(a.Info(), a.State().Stats)
		}
		return errors.New("no oVirt agent for the domain")
	}).WithTimeout(20*time.Second).WithPolling(10*time.Millisecond).Should(Succeed(), what)
	return failure
}

// mark sends a valid host-name message and waits until agentd's model shows it: whatever came
// before, the stream is framed correctly again and the guest is still being served.
func (h *hostileGuest) mark(ctx context.Context, name string, also ...func(*guest.Info) error) error {
	if err := h.line(fmt.Appendf(nil, `{"__name__":"host-name","name":%q}`, name)); err != nil {
		return err
	}
	return h.await(ctx, "after "+name, func(i *guest.Info, _ oga.Stats) error {
		if i.Hostname == nil || i.Hostname.Name != name {
			return fmt.Errorf("model hostname is not %q yet", name)
		}
		for _, f := range also {
			if err := f(i); err != nil {
				return err
			}
		}
		return nil
	})
}

// round sends one of everything. The last message of each type leaves the model in the state
// the final status assertions expect.
func (h *hostileGuest) round(ctx context.Context, r int, p *hostilePayloads) error {
	step := func(name string, err error) error {
		if err != nil {
			return fmt.Errorf("round %d, %s: %w", r, name, err)
		}
		return nil
	}
	mark := func(name string, also ...func(*guest.Info) error) error {
		return step(name, h.mark(ctx, fmt.Sprintf("%s-%d", name, r), also...))
	}
	if err := step("heartbeat", h.line([]byte(hostileHeartbeat))); err != nil {
		return err
	}
	if err := mark("heartbeat", func(i *guest.Info) error {
		if i.Memory == nil || *i.Memory != (guest.Memory{TotalBytes: math.MaxUint64}) {
			return fmt.Errorf("memory from hostile numbers: %+v", i.Memory)
		}
		return nil
	}); err != nil {
		return err
	}

	// An endless partial line: hostilePartialLine bytes, no newline, then one.
	start := time.Now()
	h.oversized++
	if err := step("partial line", h.raw([]byte(`{"__name__":"host-name","name":"`))); err != nil {
		return err
	}
	for n := 0; n < hostilePartialLine; n += len(p.chunk) {
		if err := step("partial line", h.raw(p.chunk)); err != nil {
			return err
		}
	}
	if r == 0 {
		h.openWriteDur = time.Since(start)
		// The line is still open: agentd counts it as oversized as soon as it is known to be,
		// and holds none of it.
		want := uint64(h.oversized)
		if err := step("open line counted", h.await(ctx, "oversized counter", func(_ *guest.Info, s oga.Stats) error {
			if s.OversizedLines != want {
				return fmt.Errorf("%d oversized lines, want %d", s.OversizedLines, want)
			}
			return nil
		})); err != nil {
			return err
		}
		h.openHeap, h.openSent = liveHeap(), h.sent.Load()
	}
	if err := step("end of partial line", h.raw([]byte("\n"))); err != nil {
		return err
	}
	if err := mark("after-partial-line"); err != nil {
		return err
	}

	// A 1 MiB+ line written in chunks, then its newline.
	h.oversized++
	if err := step("long line", h.chunked(p.longLine)); err != nil {
		return err
	}
	if err := step("long line", h.raw([]byte("\n"))); err != nil {
		return err
	}
	if err := mark("after-long-line"); err != nil {
		return err
	}

	// Exactly at the cap: accepted. One byte more: dropped.
	if err := step("boundary", h.chunked(p.boundaryOK)); err != nil {
		return err
	}
	if err := step("boundary", h.await(ctx, "line of exactly MaxMessageSize", func(i *guest.Info, _ oga.Stats) error {
		if i.Hostname == nil || i.Hostname.Name != "boundary-ok" {
			return errors.New("a line of exactly MaxMessageSize bytes was not accepted")
		}
		return nil
	})); err != nil {
		return err
	}
	h.oversized++
	if err := step("boundary+1", h.chunked(p.boundaryBad)); err != nil {
		return err
	}
	if err := mark("after-boundary"); err != nil {
		return err
	}

	// Malformed lines, among them 100,000 levels of nesting.
	for _, l := range p.malformed {
		h.malformed++
		if err := step("malformed", h.line(l)); err != nil {
			return err
		}
	}
	if err := mark("after-malformed"); err != nil {
		return err
	}

	// Invalid UTF-8 in valid messages: in values (replaced), in a key (no match), in __name__
	// (an unknown message).
	h.unknown++
	for _, l := range []string{
		hostileFQDNLine,
		`{"__name__":"active-user","name":"` + hostileUserRaw + strings.Repeat("\xfe", 300) + `"}`,
		"{\"__name__\":\"host-name\xff\",\"name\":\"evil-name\"}",
		"{\"__name__\":\"fqdn\",\"fq\xffdn\":\"evil-key.example\"}",
	} {
		if err := step("invalid UTF-8", h.line([]byte(l))); err != nil {
			return err
		}
	}
	if err := mark("after-utf8", func(i *guest.Info) error {
		if i.Hostname.FQDN != hostileFQDN || i.Users == nil || len(i.Users.List) != 1 || i.Users.List[0].Name != hostileUser {
			return fmt.Errorf("invalid UTF-8 not replaced as expected: fqdn %q users %+v", i.Hostname.FQDN, i.Users)
		}
		return nil
	}); err != nil {
		return err
	}

	// Huge numbers: the valid extreme first, then values that must all be ignored.
	for _, l := range []string{
		`{"__name__":"number-of-cpus","count":2147483647}`,
		`{"__name__":"number-of-cpus","count":1e400}`,
		`{"__name__":"number-of-cpus","count":-1e400}`,
		`{"__name__":"number-of-cpus","count":1180591620717411303424}`,
		`{"__name__":"number-of-cpus","count":-1}`,
		`{"__name__":"number-of-cpus","count":"-1"}`,
		`{"__name__":"number-of-cpus","count":4294967296}`,
		`{"__name__":"number-of-cpus","count":2.5e9}`,
		`{"__name__":"timezone","zone":"Etc/GMT-1","offset":60}`,
		`{"__name__":"timezone","zone":"Etc/GMT-1","offset":1e400}`,
		`{"__name__":"timezone","zone":"Etc/GMT-1","offset":1180591620717411303424}`,
		`{"__name__":"timezone","zone":"Etc/GMT-1","offset":-99999}`,
		`{"__name__":"timezone","zone":"Etc/GMT-1","offset":"9e99"}`,
		hostileHeartbeat,
	} {
		if err := step("numbers", h.line([]byte(l))); err != nil {
			return err
		}
	}
	if err := mark("after-numbers", func(i *guest.Info) error {
		if i.VCPUs == nil || i.VCPUs.Online != math.MaxInt32 || i.Timezone == nil || i.Timezone.OffsetMinutes != 60 {
			return fmt.Errorf("huge numbers: vcpus %+v timezone %+v", i.VCPUs, i.Timezone)
		}
		return nil
	}); err != nil {
		return err
	}

	// 100,000-entry lists: the model keeps oga.MaxListEntries of each.
	for _, l := range p.lists {
		if err := step(l.name, h.line(l.line)); err != nil {
			return err
		}
		if err := mark("after-"+l.name, l.check); err != nil {
			return err
		}
	}

	// Lists of long strings that blow the status size up: the publisher must shrink it.
	if err := step("big lists", h.line(p.bigApps)); err != nil {
		return err
	}
	if err := step("big lists", h.line(p.bigDisks)); err != nil {
		return err
	}
	return mark("after-big-lists", func(i *guest.Info) error {
		if len(i.Applications.List) != hostileBigApps || len(i.Filesystems.List) != hostileBigFilesystem {
			return fmt.Errorf("big lists: %d applications, %d filesystems", len(i.Applications.List), len(i.Filesystems.List))
		}
		return nil
	})
}

// flood sends rounds until stop is closed, hostileMinBytes were sent and hostileMinFlood passed.
func (h *hostileGuest) flood(ctx context.Context, p *hostilePayloads, stop <-chan struct{}) (int, error) {
	start := time.Now()
	for r := 0; ; r++ {
		if err := h.round(ctx, r, p); err != nil {
			return r, err
		}
		select {
		case <-stop:
			if h.sent.Load() >= hostileMinBytes && time.Since(start) >= hostileMinFlood {
				return r + 1, nil
			}
		case <-ctx.Done():
			return r + 1, ctx.Err()
		default:
		}
	}
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// metricValue returns the value of one series (`name{labels}`) in scrape's output; absent is 0.
func metricValue(t *testing.T, n *node, series string) float64 {
	t.Helper()
	text, err := scrape(n)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

type ogaCounters struct{ messages, dropped, oversized, unknown, connects float64 }

func readOGACounters(t *testing.T, n *node, uuid string) ogaCounters {
	t.Helper()
	get := func(name string) float64 {
		return metricValue(t, n, "guestagent_agentd_oga_"+name+`{domain_uuid="`+uuid+`"}`)
	}
	return ogaCounters{messages: get("messages_total"), dropped: get("dropped_lines_total"),
		oversized: get("oversized_lines_total"), unknown: get("unknown_messages_total"), connects: get("connects_total")}
}

// TestHostileGuest: one oVirt guest floods its channel with oversized and endless lines,
// malformed and deeply nested JSON, invalid UTF-8, 100,000-entry lists and huge numbers (issue
// #9). Meanwhile the other domains of the node keep being served (their data changes reach their
// statuses, commands to them succeed), a command to the hostile domain is still delivered,
// agentd's live heap stays bounded, and the hostile domain's status stays under the size cap
// with capped lists and exact truncation counts; afterwards a valid message is published.
func TestHostileGuest(t *testing.T) {
	ctx := context.Background()
	e := newCmdEnv(t, "tenant-a", "a5a5a5a5", ogafake.Config{HookEvents: []string{"before_migration"}})
	// Cleanups run last-in first-out: the node stops first (like in the other tests, so that no
	// disconnect Event is logged after the test ended), then the hostile guest (closing its
	// socket unblocks a pending write of the flood), then the flood goroutines are awaited.
	floodCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	gH, sockH := ogaGuest(t, ogafake.Config{HeartbeatInterval: time.Hour}, nil)
	t.Cleanup(e.n.stop)
	hostile := withOGA(domain("a5a5a5a5-0000-4000-8000-000000000004", "hostile"), sockH)
	hostile.Placement.Namespace = e.ns
	e.n.watcher.Set(hostile, virt.LifecycleStarted)
	h := &hostileGuest{g: gH, l: e.n.agent.Listener, uuid: hostile.UUID}
	NewWithT(t).Eventually(func() error {
		if !gH.Connected() {
			return errors.New("agentd not connected to the hostile guest yet")
		}
		return nil
	}).WithTimeout(10 * time.Second).Should(Succeed())
	// Negotiate API 3; the guest answers with a refresh burst ending in os-info.
	if err := h.line([]byte(hostileHeartbeat)); err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() error {
		a := h.l.Agent(hostile.UUID)
		if a == nil || gH.APIVersion() != 3 {
			return errors.New("API version 3 not negotiated yet")
		}
		if i := a.Info(); i.OS == nil || i.OS.Name != "debian" {
			return errors.New("refresh burst not complete yet")
		}
		gas, err := getGAS(ctx, e.ns, hostile.UUID)
		if err != nil {
			return err
		}
		if gas.Status.OvirtAgent == nil || ptr.Deref(gas.Status.OvirtAgent.APIVersion, 0) != 3 {
			return errors.New("hostile status not at API 3 yet")
		}
		return nil
	}).WithTimeout(20 * time.Second).Should(Succeed())
	hostileTarget := e.target(hostile)

	p := buildHostilePayloads(t)
	baseH := readOGACounters(t, e.n, hostile.UUID)
	baseInvalid := metricValue(t, e.n, `guestagent_agentd_status_writes_total{result="invalid"}`)
	baseHeap := liveHeap()

	// The flood, on its own goroutine; a sampler records the peak heap in use.
	stop := make(chan struct{})
	type floodResult struct {
		rounds int
		err    error
	}
	done := make(chan floodResult, 1)
	var peak atomic.Uint64
	floodStart := time.Now()
	wg.Add(2)
	go func() {
		defer wg.Done()
		r, err := h.flood(floodCtx, p, stop)
		done <- floodResult{r, err}
	}()
	samplerStop := make(chan struct{})
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-samplerStop:
				return
			case <-floodCtx.Done():
				return
			case <-tick.C:
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	NewWithT(t).Eventually(func() error {
		if h.sent.Load() < 1<<20 {
			return errors.New("flood not started")
		}
		return nil
	}).WithTimeout(10 * time.Second).Should(Succeed())

	// The well-behaved domains keep being served: data changes reach their statuses.
	for i := 1; i <= 5; i++ {
		host, user := fmt.Sprintf("well-%d.example.com", i), fmt.Sprintf("alice%d", i)
		session, wantSession := "session-lock", "Locked"
		if i%2 == 0 {
			session, wantSession = "session-unlock", "Active"
		}
		e.gO.SetData(func(d *ogafake.Data) { d.Hostname, d.ActiveUser = host, user })
		if err := e.gO.Send("host-name", map[string]any{"name": host}); err != nil {
			t.Fatal(err)
		}
		if err := e.gB.Send(session, nil); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		NewWithT(t).Eventually(func() error {
			o, err := getGAS(ctx, e.ns, e.oOnly.UUID)
			if err != nil {
				return err
			}
			if o.Status.Hostname != host || len(o.Status.Users) != 1 || o.Status.Users[0].Name != user {
				return fmt.Errorf("well-behaved status: hostname %q users %+v, want %q %q", o.Status.Hostname, o.Status.Users, host, user)
			}
			b, err := getGAS(ctx, e.ns, e.bo.UUID)
			if err != nil {
				return err
			}
			if b.Status.Session != wantSession {
				return fmt.Errorf("well-behaved session %q, want %q", b.Status.Session, wantSession)
			}
			return nil
		}).WithTimeout(20 * time.Second).Should(Succeed())
		t.Logf("well-behaved change %d published after %v (hostile guest has sent %d MiB)", i, time.Since(t0).Round(time.Millisecond), h.sent.Load()>>20)

		if i == 2 {
			// Commands during the flood: to the well-behaved domains they succeed; to the
			// hostile one too, since it keeps sending valid heartbeats between its attacks (it is
			// responsive) and the flood only occupies agentd's reading side of its channel.
			lockBefore := received(e.gO, "lock-screen")
			expect(t, run(t, newCmd(e.ns, "hostile-flood-lock-well", e.target(e.oOnly), gav1.ActionLockScreen)),
				gav1.PhaseSucceeded, gav1.ReasonCompleted, gav1.AgentOvirt)
			hook := newCmd(e.ns, "hostile-flood-hook-well", e.target(e.oOnly), gav1.ActionHook)
			hook.Spec.Hook = &gav1.HookParams{Name: gav1.HookBeforeMigration}
			expect(t, run(t, hook), gav1.PhaseSucceeded, gav1.ReasonCompleted, gav1.AgentOvirt)
			ping := newCmd(e.ns, "hostile-flood-ping-both", e.target(e.bo), gav1.ActionPing)
			ping.Spec.Agent = gav1.AgentBoth
			expect(t, run(t, ping), gav1.PhaseSucceeded, gav1.ReasonCompleted, gav1.AgentQemu, gav1.AgentOvirt)
			expect(t, run(t, newCmd(e.ns, "hostile-flood-lock-hostile", hostileTarget, gav1.ActionLockScreen)),
				gav1.PhaseSucceeded, gav1.ReasonCompleted, gav1.AgentOvirt)
			NewWithT(t).Eventually(func() error {
				if n := received(e.gO, "lock-screen"); n != lockBefore+1 {
					return fmt.Errorf("well-behaved guest locked %d times, want %d", n, lockBefore+1)
				}
				if n := received(gH, "lock-screen"); n != 1 {
					return fmt.Errorf("hostile guest locked %d times, want 1", n)
				}
				return nil
			}).WithTimeout(5 * time.Second).Should(Succeed())
			t.Logf("4 commands completed during the flood (hostile guest has sent %d MiB)", h.sent.Load()>>20)
		}
	}

	close(stop)
	var res floodResult
	select {
	case res = <-done:
	case <-time.After(3 * time.Minute):
		t.Fatal("the flood did not end")
	}
	floodDur := time.Since(floodStart)
	close(samplerStop)
	if res.err != nil {
		t.Fatalf("hostile flood (after %d MiB): %v", h.sent.Load()>>20, res.err)
	}
	sent := h.sent.Load()

	// The stream recovered: a valid message after the flood is published.
	if err := h.line(fmt.Appendf(nil, `{"__name__":"host-name","name":%q}`, hostileRecovered)); err != nil {
		t.Fatal(err)
	}
	var gas *gav1.GuestAgentStatus
	NewWithT(t).Eventually(func() error {
		if err := h.line([]byte(hostileHeartbeat)); err != nil { // stays responsive, not idle
			return err
		}
		g, err := getGAS(ctx, e.ns, hostile.UUID)
		if err != nil {
			return err
		}
		if g.Status.Hostname != hostileRecovered {
			return fmt.Errorf("hostile hostname %q, want %q", g.Status.Hostname, hostileRecovered)
		}
		gas = g
		return nil
	}).WithTimeout(20 * time.Second).Should(Succeed())
	afterHeap := liveHeap()
	runtime.KeepAlive(p)

	// Memory: live heap growth bounded by the caps, not by what was sent.
	growth := int64(afterHeap) - int64(baseHeap)
	openGrowth := int64(h.openHeap) - int64(baseHeap)
	t.Logf("hostile guest sent %.1f MiB in %d rounds over %v (first %d MiB partial line written in %v)",
		float64(sent)/(1<<20), res.rounds, floodDur.Round(time.Millisecond), hostilePartialLine>>20, h.openWriteDur.Round(time.Millisecond))
	t.Logf("live heap: before %.1f MiB, with a %d MiB line open %.1f MiB (%+.1f), after %.1f MiB (%+.1f); peak heap in use during the flood %.1f MiB",
		mib(baseHeap), h.openSent>>20, mib(h.openHeap), float64(openGrowth)/(1<<20), mib(afterHeap), float64(growth)/(1<<20), mib(peak.Load()))
	if sent < hostileMinBytes {
		t.Fatalf("only %d bytes sent", sent)
	}
	if openGrowth >= heapGrowthOpenLimit {
		t.Errorf("live heap grew by %d bytes while a %d-byte line was open; the partial line is buffered", openGrowth, h.openSent)
	}
	if growth >= heapGrowthLimit {
		t.Errorf("live heap grew by %d bytes (limit %d) after %d bytes from a hostile guest", growth, heapGrowthLimit, sent)
	}

	// The hostile domain's status: under the cap, capped lists, exact truncation counts.
	st := gas.Status
	stJSON, _ := json.Marshal(st)
	objJSON, _ := json.Marshal(gas)
	t.Logf("hostile status: %d bytes (object %d bytes, cap %d); %d interfaces, %d filesystems, %d disk mappings, %d applications, %d containers; truncated %+v",
		len(stJSON), len(objJSON), publish.DefaultMaxStatusBytes, len(st.Interfaces), len(st.Filesystems), len(st.DiskMappings),
		len(st.Applications), len(st.Containers), ptr.Deref(st.Truncated, gav1.TruncationCounts{}))
	if len(stJSON) > publish.DefaultMaxStatusBytes || len(objJSON) > publish.DefaultMaxStatusBytes {
		t.Errorf("status of %d bytes (object %d) exceeds the cap of %d", len(stJSON), len(objJSON), publish.DefaultMaxStatusBytes)
	}
	checkHostileStatus(t, gas)

	// agentd's per-domain counters (exported as metrics) saw exactly what was sent; the channel
	// was never dropped; the other domains' channels saw nothing of it; no status was refused.
	c := readOGACounters(t, e.n, hostile.UUID)
	t.Logf("hostile channel counters: %+v (before the flood %+v)", c, baseH)
	if d := c.oversized - baseH.oversized; d != float64(h.oversized) {
		t.Errorf("oversized lines counted %v, sent %d", d, h.oversized)
	}
	if d := c.dropped - baseH.dropped; d != float64(h.malformed) {
		t.Errorf("dropped lines counted %v, sent %d malformed", d, h.malformed)
	}
	if d := c.unknown - baseH.unknown; d != float64(h.unknown) {
		t.Errorf("unknown messages counted %v, sent %d", d, h.unknown)
	}
	if c.connects != 1 {
		t.Errorf("the hostile channel was connected %v times, want 1 (never dropped)", c.connects)
	}
	for _, d := range []virt.Domain{e.oOnly, e.bo} {
		if w := readOGACounters(t, e.n, d.UUID); w.dropped != 0 || w.oversized != 0 || w.connects != 1 {
			t.Errorf("well-behaved %s: %+v", d.Name, w)
		}
	}
	if d := metricValue(t, e.n, `guestagent_agentd_status_writes_total{result="invalid"}`) - baseInvalid; d != 0 {
		t.Errorf("the apiserver refused %v status writes during the flood", d)
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// checkHostileStatus checks the published result of the last flood round (see round).
func checkHostileStatus(t *testing.T, gas *gav1.GuestAgentStatus) {
	t.Helper()
	st := gas.Status
	tr := ptr.Deref(st.Truncated, gav1.TruncationCounts{})
	errorf := func(format string, a ...any) { t.Helper(); t.Errorf("hostile status: "+format, a...) }

	// List caps, per list and per string.
	for name, n := range map[string][2]int{
		"interfaces": {len(st.Interfaces), gav1.MaxInterfaces}, "filesystems": {len(st.Filesystems), gav1.MaxFilesystems},
		"diskMappings": {len(st.DiskMappings), gav1.MaxDiskMappings}, "applications": {len(st.Applications), gav1.MaxApplications},
		"containers": {len(st.Containers), gav1.MaxContainers}, "users": {len(st.Users), gav1.MaxUsers},
	} {
		if n[0] > n[1] {
			errorf("%d %s, cap %d", n[0], name, n[1])
		}
	}
	for _, itf := range st.Interfaces {
		if len(itf.IPv4) > gav1.MaxAddresses || len(itf.IPv6) > gav1.MaxAddresses {
			errorf("interface with %d/%d addresses", len(itf.IPv4), len(itf.IPv6))
		}
	}
	for _, f := range st.Filesystems {
		if utf8.RuneCountInString(f.Mountpoint) > 1024 {
			errorf("mountpoint of %d runes", utf8.RuneCountInString(f.Mountpoint))
		}
	}

	// Exact truncation counts: published + dropped = what the model kept (itself capped at
	// oga.MaxListEntries). The size guard dropped all applications and containers and halved
	// the longest lists until the status fit.
	for name, n := range map[string][2]int{
		"interfaces":   {len(st.Interfaces) + int(tr.Interfaces), oga.MaxListEntries},
		"containers":   {len(st.Containers) + int(tr.Containers), oga.MaxListEntries},
		"filesystems":  {len(st.Filesystems) + int(tr.Filesystems), hostileBigFilesystem},
		"diskMappings": {len(st.DiskMappings) + int(tr.DiskMappings), hostileBigFilesystem},
		"applications": {len(st.Applications) + int(tr.Applications), hostileBigApps},
		"addresses":    {int(tr.Addresses), oga.MaxListEntries - gav1.MaxAddresses},
		// 1024 applications cut to 512 runes, 255 mountpoints to 1024, one user name to 256.
		"strings": {int(tr.Strings), gav1.MaxApplications + (gav1.MaxFilesystems - 1) + 1},
	} {
		if n[0] != n[1] {
			errorf("%s: published + truncated = %d, want %d (truncated %+v)", name, n[0], n[1], tr)
		}
	}
	if len(st.Applications) != 0 || len(st.Containers) != 0 || len(st.Filesystems) >= gav1.MaxFilesystems {
		errorf("the size guard did not act: %d applications, %d containers, %d filesystems",
			len(st.Applications), len(st.Containers), len(st.Filesystems))
	}

	// Values: invalid UTF-8 replaced, strings cut, huge numbers ignored or clamped.
	wantUser := string([]rune(hostileUser)[:256])
	switch {
	case st.Hostname != hostileRecovered:
		errorf("hostname %q", st.Hostname)
	case st.FQDN != hostileFQDN:
		errorf("fqdn %q, want %q", st.FQDN, hostileFQDN)
	case len(st.Users) != 1 || st.Users[0].Name != wantUser:
		errorf("users %+v", st.Users)
	case ptr.Deref(st.VCPUs, -1) != 16384:
		errorf("vcpus %v, want the schema maximum 16384", ptr.Deref(st.VCPUs, -1))
	case st.Timezone == nil || st.Timezone.Zone != "Etc/GMT-1" || st.Timezone.OffsetMinutes != 60:
		errorf("timezone %+v", st.Timezone)
	case st.Memory == nil || ptr.Deref(st.Memory.TotalBytes, 0) != math.MaxInt64 || st.Memory.FreeBytes != nil ||
		st.Memory.UnusedBytes != nil || st.Memory.SwapTotalBytes != nil || st.Memory.SwapUsedBytes != nil:
		errorf("memory %+v", st.Memory)
	case len(st.Interfaces) == 0 || st.Interfaces[0].MAC != "52:54:00:ab:cd:ef" || len(st.Interfaces[0].IPv4) != gav1.MaxAddresses:
		errorf("first interface %+v", st.Interfaces[:min(1, len(st.Interfaces))])
	case st.PrimaryIP != "192.0.2.77":
		errorf("primaryIP %q", st.PrimaryIP)
	case len(st.Filesystems) == 0 || st.Filesystems[0].Mountpoint != "/" || ptr.Deref(st.Filesystems[0].TotalBytes, 0) != math.MaxInt64:
		errorf("first filesystem %+v", st.Filesystems[:min(1, len(st.Filesystems))])
	}
	if cond(gas, gav1.ConditionOvirtAgentConnected) != metav1.ConditionTrue || cond(gas, gav1.ConditionAgentResponsive) != metav1.ConditionTrue {
		errorf("conditions %+v", st.Conditions)
	}
	if len(st.ExecutedCommands) != 1 || st.ExecutedCommands[0].Action != gav1.ActionLockScreen {
		errorf("executed commands %+v, want the lock", st.ExecutedCommands)
	}
}
