package publish

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/api/v1alpha1"
)

// Defaults of Options.
const (
	DefaultMinInterval    = time.Second
	DefaultWriteQPS       = 40.0
	DefaultWriteBurst     = 80
	DefaultRetryBaseDelay = 500 * time.Millisecond
	DefaultRetryMaxDelay  = time.Minute
	DefaultWorkers        = 2
	DefaultForeignRecheck = time.Minute
	DefaultStartupGrace   = 20 * time.Second
	seedPageSize          = 500
)

// Options configure a Publisher. NodeName, DefaultNamespace and Client are required; every other
// zero field takes its documented default.
type Options struct {
	// NodeName is this node (from the Downward API). It becomes a label value, so it must be a
	// DNS-1123 subdomain of at most 63 characters.
	NodeName string
	// DefaultNamespace holds the objects of domains without a placement.
	DefaultNamespace string
	// Client writes the objects. Set explicit QPS/Burst on the rest.Config it is built from.
	Client client.Client
	// APIReader reads directly from the API (startup seeding, first sight of a domain, the fresh
	// read before a delete). Default: Client. Pass the manager's APIReader when Client is cached.
	APIReader client.Reader
	// Logger receives creations, adoptions, deletions and failures. Default: discard.
	Logger logr.Logger
	// MinInterval is the minimum time between two writes for one object (default 1 s). Updates
	// arriving in between are coalesced into one write of the latest state.
	MinInterval time.Duration
	// WriteQPS and WriteBurst bound all of the publisher's writes together (default 40 and 80);
	// this is on top of the client's own QPS/Burst: keep them below it, so that other users of
	// the client (agentd's command executor) are not starved while many objects are written.
	WriteQPS   float64
	WriteBurst int
	// RetryBaseDelay and RetryMaxDelay bound the per-object exponential backoff after a transient
	// error (default 500 ms and 1 min).
	RetryBaseDelay, RetryMaxDelay time.Duration
	// Workers is the number of objects written concurrently (default 2).
	Workers int
	// MemoryThreshold and FilesystemThreshold decide when volatile figures are written
	// (default DefaultThreshold).
	MemoryThreshold, FilesystemThreshold *Threshold
	// MaxStatusBytes caps the JSON size of a status (default DefaultMaxStatusBytes).
	MaxStatusBytes int
	// ForeignRecheck is how often, at most, an object adopted by another node is re-read when
	// this node still reports the domain (default 1 min).
	ForeignRecheck time.Duration
	// StartupGrace is how long after Run starts a status that would regress what an existing
	// object of a running domain says (an agent connected or responsive no longer, current data
	// stale) is held back: right after an agentd restart the agents are not probed yet, and
	// publishing that ignorance would flip conditions on every rollout. A status that does not
	// regress is written at once; a held one is written when the grace ends unless agentd knew
	// better by then. Default 20 s; negative disables.
	StartupGrace time.Duration
	// Clock returns the current time (default time.Now); for tests.
	Clock func() time.Time
	// Events receives an Event on a domain's GuestAgentStatus when one of its agents connects or
	// disconnects; nil sends none.
	Events events.EventRecorder
}

func (o *Options) setDefaults() {
	if o.APIReader == nil {
		o.APIReader = o.Client
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	o.MinInterval = cmpOr(o.MinInterval, DefaultMinInterval)
	o.WriteQPS = cmpOr(o.WriteQPS, DefaultWriteQPS)
	o.WriteBurst = cmpOr(o.WriteBurst, DefaultWriteBurst)
	o.RetryBaseDelay = cmpOr(o.RetryBaseDelay, DefaultRetryBaseDelay)
	o.RetryMaxDelay = cmpOr(o.RetryMaxDelay, DefaultRetryMaxDelay)
	o.Workers = cmpOr(o.Workers, DefaultWorkers)
	o.MaxStatusBytes = cmpOr(o.MaxStatusBytes, DefaultMaxStatusBytes)
	o.ForeignRecheck = cmpOr(o.ForeignRecheck, DefaultForeignRecheck)
	o.StartupGrace = cmpOr(o.StartupGrace, DefaultStartupGrace)
	if o.MemoryThreshold == nil {
		o.MemoryThreshold = &DefaultThreshold
	}
	if o.FilesystemThreshold == nil {
		o.FilesystemThreshold = &DefaultThreshold
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (o *Options) validate() error {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("client is required"))
	}
	if msgs := validation.IsDNS1123Subdomain(o.NodeName); len(msgs) > 0 || len(o.NodeName) > 63 {
		errs = append(errs, fmt.Errorf("node name %q must be a DNS-1123 subdomain of at most 63 characters", o.NodeName))
	}
	if msgs := validation.IsDNS1123Label(o.DefaultNamespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("default namespace %q is not a valid namespace name", o.DefaultNamespace))
	}
	if o.MinInterval < 0 || o.WriteQPS < 0 || o.WriteBurst < 0 || o.Workers < 0 || o.MaxStatusBytes < 0 {
		errs = append(errs, errors.New("intervals, rates, burst, workers and sizes must not be negative"))
	}
	errs = append(errs, o.MemoryThreshold.validate("memory"), o.FilesystemThreshold.validate("filesystem"))
	return errors.Join(errs...)
}

// Publisher writes the GuestAgentStatus objects of this node's domains. Upsert and Remove are
// cheap and safe for concurrent use; Run does the API work.
type Publisher struct {
	opts    Options
	log     logr.Logger
	build   builder
	queue   workqueue.TypedRateLimitingInterface[string]
	limiter *rate.Limiter

	mu      sync.Mutex
	entries map[string]*entry                     // by UUID
	seed    map[string]*v1alpha1.GuestAgentStatus // objects listed at start, by UUID, until first sight
	// executed holds the commands executed on each domain since this process started, by UUID
	// (see RecordExecuted); the domain's object holds the rest of the history.
	executed map[string][]v1alpha1.ExecutedCommand
	// links is the last connection state of each domain's agents, for transition Events.
	links map[string]agentLinks
	// apiVersions caches the persisted oVirt API versions listed at first use (apiversion.go).
	apiVersions map[string]int
	outage      outage // the API server's unavailability, see outage.go

	ownerMu     sync.Mutex
	owner       *ownerRef
	ownerErr    error     // the last failed read of the node
	ownerReadAt time.Time // the last read of the node

	seeded  chan struct{}
	started atomic.Bool
	runAt   time.Time // when Run started (set before the workers start)
	stats   stats
}

type ownerRef struct {
	name string
	uid  types.UID
}

// stats are per-publisher counters (the Prometheus ones are process-wide).
type stats struct {
	decisions, unchanged, writes atomic.Int64
}

// entry is the state of one domain. desired/removed/gen are guarded by Publisher.mu; the rest is
// touched only by the worker processing the UUID (the queue never hands one UUID to two workers).
type entry struct {
	uuid    string
	desired *Desired
	removed bool
	gen     uint64 // bumped by Upsert and Remove
	doneGen uint64 // the gen last published successfully

	state      objState // the object's lifecycle (objstate.go)
	ns, name   string   // where the object is, in the states that place it
	rv         string
	uid        types.UID
	domainName string
	applied    *v1alpha1.GuestAgentStatusStatus // last applied (or read) status
	rejected   *v1alpha1.GuestAgentStatusStatus // last status the apiserver refused
	rejectedAt metav1.Time                      // the time it was built with
	checkedAt  time.Time                        // last re-read of a foreign object
	seedObj    *v1alpha1.GuestAgentStatus       // the startup listing's object, in stSeeded
	settled    bool                             // a status was applied since Run started
	carry      []v1alpha1.ExecutedCommand       // history to move into a re-created object
	notBefore  time.Time
	failures   int
	gone       types.UID // set by ObjectDeleted (under Publisher.mu): the watch saw this object go
	listed     bool      // set by ObjectsListed (under Publisher.mu) with what the watch listed
	listedAs   Listed
	changedUID types.UID // set by ObjectChanged (under Publisher.mu): the watch saw this version
	changedRV  string

	releaseGen    uint64   // the gen of Release (under Publisher.mu): release instead of delete
	handover      handover // the object names another node: waiting for its release, or reclaiming
	handoverWaits int      // re-reads while waiting for the release, for the log and the backoff
}

// New validates opts and returns a Publisher. Call Run to start writing.
func New(opts Options) (*Publisher, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("invalid publisher options: %w", err)
	}
	rl := workqueue.NewTypedItemExponentialFailureRateLimiter[string](opts.RetryBaseDelay, opts.RetryMaxDelay)
	return &Publisher{
		opts: opts,
		log:  opts.Logger.WithValues("node", opts.NodeName),
		build: builder{
			memory: *opts.MemoryThreshold, filesystem: *opts.FilesystemThreshold, maxBytes: opts.MaxStatusBytes,
		},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(rl,
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "guestagent-publish"}),
		limiter:  rate.NewLimiter(rate.Limit(opts.WriteQPS), opts.WriteBurst),
		entries:  map[string]*entry{},
		executed: map[string][]v1alpha1.ExecutedCommand{},
		links:    map[string]agentLinks{},
		seeded:   make(chan struct{}),
	}, nil
}

// Upsert records the latest desired state of a domain and schedules a publish. It returns at once;
// many calls between two writes collapse into one write of the last state. d is copied. An
// opted-out domain is handled like Remove, but a later Upsert without OptOut publishes it again.
func (p *Publisher) Upsert(d Desired) error {
	uuid, err := NormalizeUUID(d.Domain.UUID)
	if err != nil {
		return err
	}
	if d.Domain.Name == "" {
		return fmt.Errorf("domain %s has no name", uuid)
	}
	c := d.deepCopy()
	c.Domain.UUID = uuid
	p.mu.Lock()
	c.ExecutedCommands = p.withHistoryLocked(uuid, c.ExecutedCommands)
	e := p.entryLocked(uuid)
	e.desired, e.removed = c, false
	e.gen++
	prev, seen := p.links[uuid]
	now := linksOf(c.Agents)
	p.links[uuid] = now
	p.mu.Unlock()
	if seen && !c.Domain.OptOut {
		p.connectionEvents(c, prev, now)
	}
	p.enqueue(uuid)
	return nil
}

// Remove schedules the deletion of a domain's object because the domain left this node. The
// object is deleted only while it still names this node: a domain that migrated away keeps the
// object the destination node adopted.
func (p *Publisher) Remove(uuid string) error {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return err
	}
	p.mu.Lock()
	e := p.entryLocked(u)
	e.removed = true
	e.gen++
	p.forgetLocked(u)
	p.mu.Unlock()
	p.enqueue(u)
	return nil
}

// forgetLocked drops what the publisher remembers of a domain that left this node: its recorded
// history (now on the object) and its agents' last connection state.
func (p *Publisher) forgetLocked(uuid string) {
	delete(p.executed, uuid)
	delete(p.links, uuid)
}

// RemoveAllExcept removes every domain this publisher knows from the objects listed at start
// (and never upserted since) whose UUID is not in present. Call it after the first full domain discovery so
// that objects of domains that vanished while agentd was down are deleted. It waits for the
// startup listing.
func (p *Publisher) RemoveAllExcept(ctx context.Context, present []string) error {
	select {
	case <-p.seeded:
	case <-ctx.Done():
		return ctx.Err()
	}
	keep := make(map[string]bool, len(present))
	for _, u := range present {
		if n, err := NormalizeUUID(u); err == nil {
			keep[n] = true
		}
	}
	p.mu.Lock()
	var gone []string
	for u, e := range p.entries {
		// An entry that was upserted is a live domain, whatever the caller's snapshot says: a
		// domain may appear between the caller's listing and this call.
		if !keep[u] && e.desired == nil {
			gone = append(gone, u)
		}
	}
	for u := range p.seed {
		if !keep[u] && p.entries[u] == nil {
			gone = append(gone, u)
		}
	}
	p.mu.Unlock()
	for _, u := range gone {
		if err := p.Remove(u); err != nil {
			return err
		}
	}
	return nil
}

func (p *Publisher) entryLocked(uuid string) *entry {
	e := p.entries[uuid]
	if e == nil {
		e = &entry{uuid: uuid}
		if obj := p.seed[uuid]; obj != nil {
			e.seedObj = obj
			e.on(evListed)
			delete(p.seed, uuid)
		} else if p.seed != nil { // listed, and not there
			e.on(evNotListed)
		}
		p.entries[uuid] = e
	}
	return e
}

func (p *Publisher) enqueue(uuid string) {
	p.queue.Add(uuid)
	queueDepth.Set(float64(p.queue.Len()))
}

// Run lists this node's existing objects (to seed the last applied state), then publishes until
// ctx ends. It returns nil on cancellation and an error if called twice.
func (p *Publisher) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("publisher already running")
	}
	p.runAt = p.opts.Clock()
	p.seedFromAPI(ctx)
	close(p.seeded)
	var wg sync.WaitGroup
	for range p.opts.Workers {
		wg.Go(func() {
			for p.processNext(ctx) {
			}
		})
	}
	<-ctx.Done()
	p.queue.ShutDown()
	wg.Wait()
	return nil
}

// seedFromAPI lists this node's objects, paginated, once. On failure the publisher falls back to
// one read per domain at first sight, which is equally correct but costs more reads.
func (p *Publisher) seedFromAPI(ctx context.Context) {
	seed := map[string]*v1alpha1.GuestAgentStatus{}
	opts := append(ListOptions(p.opts.NodeName), client.Limit(seedPageSize))
	cont := ""
	for {
		var list v1alpha1.GuestAgentStatusList
		if err := p.opts.APIReader.List(ctx, &list, append(opts, client.Continue(cont))...); err != nil {
			p.log.Error(err, "Listing existing GuestAgentStatus objects failed; reading them one by one instead")
			return
		}
		for i := range list.Items {
			o := &list.Items[i]
			if u, err := NormalizeUUID(o.Spec.DomainUUID); err == nil {
				seed[u] = o
			}
		}
		if cont = list.Continue; cont == "" {
			break
		}
	}
	n := len(seed) // before sharing: Upserts delete from the map under p.mu
	p.mu.Lock()
	p.seed = seed
	for u, e := range p.entries { // Upserts that arrived before Run
		if e.state != stUnknown {
			continue
		}
		if obj := seed[u]; obj != nil {
			e.seedObj = obj
			e.on(evListed)
			delete(p.seed, u)
		} else {
			e.on(evNotListed)
		}
	}
	p.mu.Unlock()
	p.log.Info("Seeded publisher from existing objects", "count", n)
}

func (p *Publisher) processNext(ctx context.Context) bool {
	uuid, shutdown := p.queue.Get()
	if shutdown {
		return false
	}
	defer func() {
		p.queue.Done(uuid)
		queueDepth.Set(float64(p.queue.Len()))
	}()
	p.mu.Lock()
	e := p.entries[uuid]
	var gen uint64
	if e != nil {
		gen = e.gen
	}
	p.mu.Unlock()
	if e == nil {
		p.queue.Forget(uuid)
		p.passProbe(uuid)
		return true
	}
	if p.held(uuid) {
		return true
	}
	if wait := e.notBefore.Sub(p.opts.Clock()); wait > 0 {
		p.queue.AddAfter(uuid, wait)
		return true
	}
	p.finish(ctx, uuid, e, gen, p.sync(ctx, e))
	return true
}

// finish records the result of one sync of uuid at generation gen: done, held for an unavailable
// API server, or retried with per-object backoff.
func (p *Publisher) finish(ctx context.Context, uuid string, e *entry, gen uint64, err error) {
	switch {
	case err == nil:
		e.failures = 0
		p.queue.Forget(uuid)
		p.mu.Lock()
		e.doneGen = gen
		p.mu.Unlock()
		p.passProbe(uuid)
	case ctx.Err() != nil:
	case errors.Is(err, errAwaitRelease):
		p.passProbe(uuid)
		p.queue.AddAfter(uuid, releaseWait(e.handoverWaits))
	case errors.Is(err, errStartupHeld):
		// Checked again when the grace ends; a newer Upsert is synced at once meanwhile.
		p.queue.AddAfter(uuid, max(p.runAt.Add(p.opts.StartupGrace).Sub(p.opts.Clock()), time.Millisecond))
	case unavailable(err):
		p.logFailure(e, err)
		p.hold(uuid, err)
	default:
		p.logFailure(e, err)
		p.passProbe(uuid)
		if nb := p.opts.Clock().Add(p.opts.MinInterval); nb.After(e.notBefore) {
			e.notBefore = nb // also paces retries triggered by new Upserts
		}
		p.queue.AddRateLimited(uuid)
	}
}

// Pending returns the number of domains whose latest Upsert or Remove is not yet reflected in the
// API (still queued, waiting for the rate limit, or failing). It is 0 when the publisher is idle.
func (p *Publisher) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, e := range p.entries {
		if e.doneGen != e.gen {
			n++
		}
	}
	return n
}

// logFailure logs the first failure of a streak as an error and repeats at V(1). Expected
// optimistic-lock retries (errRetry) and outages (logged once by hold) are logged at V(1) only.
func (p *Publisher) logFailure(e *entry, err error) {
	e.failures++
	log := p.log.WithValues("domainUUID", e.uuid, "guestAgentStatus", klog.KRef(e.ns, e.name), "attempt", e.failures)
	if e.failures == 1 && !errors.Is(err, errRetry) && !unavailable(err) { // an outage is logged once
		log.Error(err, "Publishing GuestAgentStatus failed; retrying with backoff")
		return
	}
	log.V(1).Info("Publishing GuestAgentStatus failed again", "error", err.Error())
}

// nodeOwner returns this node's name and UID, read from the API once and again after forgetOwner.
// A failed read is remembered for ownerRetry so that many objects do not each read the node.
func (p *Publisher) nodeOwner(ctx context.Context) (*ownerRef, error) {
	p.ownerMu.Lock()
	defer p.ownerMu.Unlock()
	if p.owner != nil {
		return p.owner, nil
	}
	if p.ownerErr != nil && time.Since(p.ownerReadAt) < ownerRetry {
		return nil, p.ownerErr
	}
	p.ownerReadAt = time.Now()
	var n corev1.Node
	if err := p.opts.APIReader.Get(ctx, client.ObjectKey{Name: p.opts.NodeName}, &n); err != nil {
		p.ownerErr = fmt.Errorf("reading node %s for the owner reference: %w", p.opts.NodeName, err)
		return nil, p.ownerErr
	}
	if p.owner == nil || p.owner.uid != n.UID {
		p.log.V(1).Info("Read the node's UID for owner references", "uid", n.UID)
	}
	p.owner, p.ownerErr = &ownerRef{name: n.Name, uid: n.UID}, nil
	return p.owner, nil
}

// forgetOwner makes the next nodeOwner read the node again (at most once per ownerRetry): an
// object of ours that someone else deleted may have been collected because the Node object was
// re-created with a new UID.
func (p *Publisher) forgetOwner() {
	p.ownerMu.Lock()
	defer p.ownerMu.Unlock()
	if time.Since(p.ownerReadAt) >= ownerRetry {
		p.owner = nil
	}
}
