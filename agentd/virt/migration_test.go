package virt

import (
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"libvirt.org/go/libvirt"
)

// The migration mapping as a table: each case is the sequence of libvirt lifecycle events one host
// sees, and the Lifecycle reported for each.
func TestMigrationStep(t *testing.T) {
	type step struct {
		ev     libvirt.DomainEventType
		detail int
		reason string // state reason read after the event
		want   Lifecycle
	}
	const (
		started, suspended, resumed, stopped = libvirt.DOMAIN_EVENT_STARTED, libvirt.DOMAIN_EVENT_SUSPENDED, libvirt.DOMAIN_EVENT_RESUMED, libvirt.DOMAIN_EVENT_STOPPED
	)
	var (
		startedMigrated   = int(libvirt.DOMAIN_EVENT_STARTED_MIGRATED)
		startedBooted     = int(libvirt.DOMAIN_EVENT_STARTED_BOOTED)
		suspendedMigrated = int(libvirt.DOMAIN_EVENT_SUSPENDED_MIGRATED)
		suspendedPaused   = int(libvirt.DOMAIN_EVENT_SUSPENDED_PAUSED)
		resumedMigrated   = int(libvirt.DOMAIN_EVENT_RESUMED_MIGRATED)
		resumedUnpaused   = int(libvirt.DOMAIN_EVENT_RESUMED_UNPAUSED)
		stoppedMigrated   = int(libvirt.DOMAIN_EVENT_STOPPED_MIGRATED)
		stoppedFailed     = int(libvirt.DOMAIN_EVENT_STOPPED_FAILED)
	)
	for _, c := range []struct {
		name  string
		start migPhase
		steps []step
	}{
		{"destination: migration landed", migNone, []step{
			{started, startedMigrated, "Migration", LifecycleMigrationStarted},
			{resumed, resumedMigrated, "Migrated", LifecycleMigratedIn},
		}},
		{"destination: migration failed", migNone, []step{
			{started, startedMigrated, "Migration", LifecycleMigrationStarted},
			{stopped, stoppedFailed, "Failed", LifecycleStopped},
		}},
		{"source (known from iterations): migration succeeded", migOutgoing, []step{
			{suspended, suspendedMigrated, "Migration", LifecycleMigrationPaused},
			{stopped, stoppedMigrated, "Migrated", LifecycleMigratedOut},
		}},
		{"source: aborted after the pause, QEMU resumed the CPUs (libvirt 9.0)", migOutgoing, []step{
			{suspended, suspendedMigrated, "Migration", LifecycleMigrationPaused},
			{resumed, resumedUnpaused, "Unpaused", LifecycleMigrationFailed},
		}},
		{"source without iteration events: aborted after the pause, libvirt resumed", migNone, []step{
			{suspended, suspendedMigrated, "Migration", LifecycleMigrationPaused},
			{resumed, resumedMigrated, "MigrationCanceled", LifecycleMigrationFailed},
		}},
		{"source: the next migration after a failed one lands elsewhere", migNone, []step{
			{suspended, suspendedMigrated, "Migration", LifecycleMigrationPaused},
			{resumed, resumedMigrated, "MigrationCanceled", LifecycleMigrationFailed},
			{suspended, suspendedMigrated, "Migration", LifecycleMigrationPaused},
			{stopped, stoppedMigrated, "Migrated", LifecycleMigratedOut},
		}},
		{"source: a user pause and resume during pre-copy is no failure", migOutgoing, []step{
			{suspended, suspendedPaused, "User", LifecycleSuspended},
			{resumed, resumedUnpaused, "Unpaused", LifecycleResumed},
		}},
		{"source: failure reported at the job's end; the late resume is a plain resume", migAborted, []step{
			{resumed, resumedMigrated, "MigrationCanceled", LifecycleResumed},
			{suspended, suspendedPaused, "User", LifecycleSuspended},
			{resumed, resumedUnpaused, "Unpaused", LifecycleResumed},
		}},
		{"agentd started during an incoming migration (no bookkeeping)", migNone, []step{
			{resumed, resumedMigrated, "Migrated", LifecycleMigratedIn},
		}},
		{"domain migrated back in after it failed to leave", migAborted, []step{
			{stopped, stoppedMigrated, "Migrated", LifecycleMigratedOut},
			{started, startedMigrated, "Migration", LifecycleMigrationStarted},
			{resumed, resumedMigrated, "Migrated", LifecycleMigratedIn},
		}},
		{"plain boot, pause, resume", migNone, []step{
			{started, startedBooted, "Booted", LifecycleStarted},
			{suspended, suspendedPaused, "User", LifecycleSuspended},
			{resumed, resumedUnpaused, "Unpaused", LifecycleResumed},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := migState{phase: c.start}
			for i, s := range c.steps {
				lc, _ := mapLifecycle(s.ev, s.detail)
				var got Lifecycle
				got, st = migrationStep(st, s.ev, s.detail, lc, s.reason)
				if got != s.want {
					t.Fatalf("step %d (%s/%d): %v, want %v", i, eventTypeNames[s.ev], s.detail, got, s.want)
				}
			}
		})
	}
}

func TestJobEndedStep(t *testing.T) {
	running := Domain{State: StateRunning}
	for _, c := range []struct {
		name       string
		st         migState
		snap       Domain
		wantFailed bool
		wantPhase  migPhase
	}{
		{"outgoing, still running: aborted while running", migState{phase: migOutgoing}, running, true, migAborted},
		{"outgoing, paused for the final phase: events decide", migState{phase: migOutgoing, paused: true}, Domain{State: StatePaused}, false, migOutgoing},
		{"outgoing, already stopped: migrated away", migState{phase: migOutgoing}, Domain{State: StateShutOff}, false, migOutgoing},
		{"incoming: not ours to judge", migState{phase: migIncoming}, running, false, migIncoming},
		{"no migration", migState{}, running, false, migNone},
		{"failure already reported", migState{phase: migAborted}, running, false, migAborted},
	} {
		t.Run(c.name, func(t *testing.T) {
			failed, next := jobEndedStep(c.st, c.snap)
			if failed != c.wantFailed || next.phase != c.wantPhase {
				t.Fatalf("got failed=%v phase=%v, want %v %v", failed, next.phase, c.wantFailed, c.wantPhase)
			}
		})
	}
}

// The Manager on libvirt's test driver, fed the event sequences libvirt 9.0 sends a migration
// source and destination (the test driver cannot migrate): what it reports, and that a failure
// while running (no lifecycle event at all) is found from the end of the migration job.
func TestManagerMigrationEvents(t *testing.T) {
	uri := "test://" + writeNodeXML(t, 4)
	m := NewManager(Config{URI: uri, Log: testLog(t), ResyncInterval: -1, MigrationJobCheckInterval: 20 * time.Millisecond})
	var jobActive atomic.Bool
	var jobChecks atomic.Int32
	m.jobActive = func(_ *libvirt.Connect, _ string) (bool, error) {
		jobChecks.Add(1)
		return jobActive.Load(), nil
	}
	rec := runManager(t, m)
	g := NewWithT(t)
	g.Eventually(func() bool { return m.Synced() && len(m.Domains()) == 4 }).WithTimeout(10 * time.Second).Should(BeTrue())
	gen := m.gen.Load()
	lifecycle := func(u string, ev libvirt.DomainEventType, detail int) {
		m.push(rawEvent{kind: rawLifecycle, gen: gen, uuid: u, event: ev, detail: detail})
	}
	iteration := func(u string) { m.push(rawEvent{kind: rawMigIteration, gen: gen, uuid: u}) }
	lifecycles := func(u string) []Lifecycle {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		var out []Lifecycle
		for _, e := range rec.evs {
			if e.Domain.UUID == u && e.Lifecycle != LifecycleDiscovered && e.Lifecycle != LifecycleNone {
				out = append(out, e.Lifecycle)
			}
		}
		return out
	}

	// 1. Aborted while running: iterations, then the job ends with the domain running. libvirt
	// sends the source no lifecycle event; the job watcher reports the failure once.
	u := testDomainUUID(0)
	jobActive.Store(true)
	iteration(u)
	iteration(u)
	g.Eventually(jobChecks.Load).WithTimeout(5 * time.Second).Should(BeNumerically(">=", 2))
	g.Expect(lifecycles(u)).To(BeEmpty(), "nothing is reported while the migration runs")
	jobActive.Store(false)
	g.Eventually(func() []Lifecycle { return lifecycles(u) }).WithTimeout(5 * time.Second).Should(Equal([]Lifecycle{LifecycleMigrationFailed}))
	// the watcher stopped: no more job reads for it
	n := jobChecks.Load()
	g.Consistently(jobChecks.Load).WithTimeout(200 * time.Millisecond).Should(Equal(n))

	// 2. Aborted after the pause: SUSPENDED/MIGRATED then RESUMED/UNPAUSED (QEMU restarted the
	// CPUs); the job watcher, which sees the job end later, does not report it twice.
	u = testDomainUUID(1)
	jobActive.Store(true)
	iteration(u)
	lifecycle(u, libvirt.DOMAIN_EVENT_SUSPENDED, int(libvirt.DOMAIN_EVENT_SUSPENDED_MIGRATED))
	lifecycle(u, libvirt.DOMAIN_EVENT_RESUMED, int(libvirt.DOMAIN_EVENT_RESUMED_UNPAUSED))
	g.Eventually(func() []Lifecycle { return lifecycles(u) }).WithTimeout(5 * time.Second).
		Should(Equal([]Lifecycle{LifecycleMigrationPaused, LifecycleMigrationFailed}))
	jobActive.Store(false)
	g.Consistently(func() []Lifecycle { return lifecycles(u) }).WithTimeout(300 * time.Millisecond).
		Should(Equal([]Lifecycle{LifecycleMigrationPaused, LifecycleMigrationFailed}))

	// 3. The job watcher is first, the RESUMED/MIGRATED of the same attempt comes late: one
	// failure, then a plain resume (never MigratedIn).
	u = testDomainUUID(2)
	iteration(u)
	g.Eventually(func() []Lifecycle { return lifecycles(u) }).WithTimeout(5 * time.Second).Should(Equal([]Lifecycle{LifecycleMigrationFailed}))
	lifecycle(u, libvirt.DOMAIN_EVENT_RESUMED, int(libvirt.DOMAIN_EVENT_RESUMED_MIGRATED))
	g.Eventually(func() []Lifecycle { return lifecycles(u) }).WithTimeout(5 * time.Second).
		Should(Equal([]Lifecycle{LifecycleMigrationFailed, LifecycleResumed}))

	// 4. Destination: the domain arrives paused and resumes when the migration lands.
	u = testDomainUUID(3)
	lifecycle(u, libvirt.DOMAIN_EVENT_STARTED, int(libvirt.DOMAIN_EVENT_STARTED_MIGRATED))
	lifecycle(u, libvirt.DOMAIN_EVENT_RESUMED, int(libvirt.DOMAIN_EVENT_RESUMED_MIGRATED))
	g.Eventually(func() []Lifecycle { return lifecycles(u) }).WithTimeout(5 * time.Second).
		Should(Equal([]Lifecycle{LifecycleMigrationStarted, LifecycleMigratedIn}))

	// 5. Source, successful: paused, stopped as migrated; the end of its job reports nothing.
	u = testDomainUUID(0)
	jobActive.Store(true)
	iteration(u)
	lifecycle(u, libvirt.DOMAIN_EVENT_SUSPENDED, int(libvirt.DOMAIN_EVENT_SUSPENDED_MIGRATED))
	lifecycle(u, libvirt.DOMAIN_EVENT_STOPPED, int(libvirt.DOMAIN_EVENT_STOPPED_MIGRATED))
	want := []Lifecycle{LifecycleMigrationFailed, LifecycleMigrationPaused, LifecycleMigratedOut}
	g.Eventually(func() []Lifecycle { return lifecycles(u) }).WithTimeout(5 * time.Second).Should(Equal(want))
	jobActive.Store(false)
	g.Consistently(func() []Lifecycle { return lifecycles(u) }).WithTimeout(300 * time.Millisecond).Should(Equal(want))
}
