package servicefake

import (
	"context"
	"fmt"
	"sync"
	"time"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/oga"
)

// OGA is an in-memory service.OvirtAgent: tests set each served domain's state and data and read
// the requests it received. FailWith makes every request to a served domain fail. The real
// oga.Listener is tested against a guest-side fake in agentd/oga and end to end in
// test/integration; this fake stands in for it at the service's seam.
type OGA struct {
	mu       sync.Mutex
	served   map[string]int // uuid → initial API version it was served with
	state    map[string]guest.OGAState
	info     map[string]*guest.Info
	calls    []string
	subs     []func(string)
	cpus     map[string]int // number-of-cpus a domain's guest reports whatever it is asked
	FailWith error
	// OnHook, when set, decides the outcome of a lifecycle event to a served domain (after it
	// was recorded); e.g. a wait for completion that times out.
	OnHook func(ctx context.Context, hook string, failure, wait bool, timeout time.Duration) error
	// OnLock, when set, runs after a lock-screen to a served domain was recorded (e.g. to
	// report the session Locked, as the guest would).
	OnLock func(uuid string)
}

// NewOGA returns an empty fake.
func NewOGA() *OGA {
	return &OGA{served: map[string]int{}, state: map[string]guest.OGAState{}, info: map[string]*guest.Info{}}
}

// Run implements service.OvirtAgent.
func (f *OGA) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// Subscribe implements service.OvirtAgent.
func (f *OGA) Subscribe(fn func(string)) {
	f.mu.Lock()
	f.subs = append(f.subs, fn)
	f.mu.Unlock()
}

// Serve implements service.OvirtAgent.
func (f *OGA) Serve(uuid, _ string, v int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.served[uuid]; !ok {
		f.served[uuid] = v
	}
}

// ServedWith returns the initial API version the domain is served with; ok is false when it is
// not served.
func (f *OGA) ServedWith(uuid string) (version int, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	version, ok = f.served[uuid]
	return version, ok
}

// Served implements service.OvirtAgent.
func (f *OGA) Served(uuid string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.served[uuid]
	return ok
}

// Remove implements service.OvirtAgent.
func (f *OGA) Remove(uuid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.served, uuid)
	delete(f.state, uuid)
	delete(f.info, uuid)
}

// State implements service.OvirtAgent.
func (f *OGA) State(uuid string) (guest.OGAState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.served[uuid]; !ok {
		return guest.OGAState{}, false
	}
	return f.state[uuid], true
}

// Info implements service.OvirtAgent.
func (f *OGA) Info(uuid string) *guest.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.info[uuid].DeepCopy()
}

// Set replaces a served domain's state and data and notifies the subscribers.
func (f *OGA) Set(uuid string, st guest.OGAState, info *guest.Info) {
	f.mu.Lock()
	f.state[uuid], f.info[uuid] = st, info
	subs := f.subs
	f.mu.Unlock()
	for _, fn := range subs {
		fn(uuid)
	}
}

func (f *OGA) record(call, uuid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.served[uuid]; !ok {
		return oga.ErrNotConnected
	}
	f.calls = append(f.calls, call+" "+uuid)
	return f.FailWith
}

// Calls returns the requests received, e.g. "lock <uuid>".
func (f *OGA) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Shutdown implements service.OvirtAgent.
func (f *OGA) Shutdown(_ context.Context, uuid string, _ time.Duration, _ string, reboot bool) error {
	if reboot {
		return f.record("reboot", uuid)
	}
	return f.record("shutdown", uuid)
}

// LifecycleEvent implements service.OvirtAgent: it records "hook:<name>", with ":failure" when
// failure is set.
func (f *OGA) LifecycleEvent(ctx context.Context, uuid, hook string, failure, wait bool, timeout time.Duration) error {
	call := "hook:" + hook
	if failure {
		call += ":failure"
	}
	if err := f.record(call, uuid); err != nil {
		return err
	}
	f.mu.Lock()
	on := f.OnHook
	f.mu.Unlock()
	if on != nil {
		return on(ctx, hook, failure, wait, timeout)
	}
	return nil
}

// LockScreen implements service.OvirtAgent.
func (f *OGA) LockScreen(_ context.Context, uuid string) error {
	if err := f.record("lock", uuid); err != nil {
		return err
	}
	f.mu.Lock()
	on := f.OnLock
	f.mu.Unlock()
	if on != nil {
		on(uuid)
	}
	return nil
}

// Hibernate implements service.OvirtAgent: it records "hibernate:<state>".
func (f *OGA) Hibernate(_ context.Context, uuid, state string) error {
	return f.record("hibernate:"+state, uuid)
}

// LogOff implements service.OvirtAgent.
func (f *OGA) LogOff(_ context.Context, uuid string) error { return f.record("logoff", uuid) }

// ReportCPUs makes the domain's guest answer every set-number-of-cpus with a number-of-cpus
// report of n, as the real Linux agent does (its handler changes nothing). Without it the guest
// reports the count it was asked for.
func (f *OGA) ReportCPUs(uuid string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cpus == nil {
		f.cpus = map[string]int{}
	}
	f.cpus[uuid] = n
}

// SetNumberOfCPUs implements service.OvirtAgent: it records "setcpus:<count>" and returns the
// guest's report (see ReportCPUs).
func (f *OGA) SetNumberOfCPUs(_ context.Context, uuid string, count int) (int, error) {
	if err := f.record(fmt.Sprintf("setcpus:%d", count), uuid); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n, ok := f.cpus[uuid]; ok {
		return n, nil
	}
	return count, nil
}
