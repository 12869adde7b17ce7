package publish

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/testenv"
)

func TestCreateObject(t *testing.T) {
	needEnv(t)
	c := newCounting()
	p := startPublisher(t, nodeA, c)
	uuid := newUUID()
	mustUpsert(t, p, sampleDesired(uuid, "Web Server #1"))
	settle(t, p)

	name := "web-server-1-" + uuid[:8]
	o := getStatus(t, nsDefault, name)
	if got := c.writes.Load(); got != 2 {
		t.Errorf("writes = %d, want 2 (create + status apply)", got)
	}
	if o.Labels[v1alpha1.LabelNode] != nodeA || o.Labels[v1alpha1.LabelDomainUUID] != uuid {
		t.Errorf("labels = %v", o.Labels)
	}
	var node = testenv.Node(nodeA)
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(node), node); err != nil {
		t.Fatal(err)
	}
	if len(o.OwnerReferences) != 1 {
		t.Fatalf("ownerReferences = %v", o.OwnerReferences)
	}
	ref := o.OwnerReferences[0]
	if ref.Kind != "Node" || ref.APIVersion != "v1" || ref.Name != nodeA || ref.UID != node.UID ||
		ref.BlockOwnerDeletion == nil || *ref.BlockOwnerDeletion || ref.Controller == nil || *ref.Controller {
		t.Errorf("owner reference = %+v", ref)
	}
	if o.Spec != (v1alpha1.GuestAgentStatusSpec{DomainName: "Web Server #1", DomainUUID: uuid, NodeName: nodeA}) {
		t.Errorf("spec = %+v", o.Spec)
	}
	s := o.Status
	if s.Hostname != "web1" || s.PrimaryIP != "192.168.122.10" || s.ActiveAgents != v1alpha1.ActiveAgentsBoth ||
		s.OS == nil || s.OS.PrettyName != "Debian GNU/Linux 12 (bookworm)" || s.VCPUs == nil || *s.VCPUs != 2 {
		t.Errorf("status = %+v", s)
	}
	for _, ct := range []string{v1alpha1.ConditionAgentConnected, v1alpha1.ConditionQemuAgentConnected,
		v1alpha1.ConditionOvirtAgentConnected, v1alpha1.ConditionAgentResponsive} {
		if !meta.IsStatusConditionTrue(s.Conditions, ct) {
			t.Errorf("condition %s not True: %+v", ct, s.Conditions)
		}
	}
	if !meta.IsStatusConditionFalse(s.Conditions, v1alpha1.ConditionStale) {
		t.Errorf("Stale should be False")
	}
	if len(s.DataGroups) != 11 || s.DataGroups[0].Name != "Hostname" || s.DataGroups[0].Source != v1alpha1.SourceQemu ||
		s.DataGroups[0].LastChanged == nil {
		t.Errorf("dataGroups = %+v", s.DataGroups)
	}
	if len(s.ExecutedCommands) != 1 || s.QemuAgent == nil || s.QemuAgent.Version != "7.2.0" ||
		s.OvirtAgent == nil || s.OvirtAgent.APIVersion == nil || *s.OvirtAgent.APIVersion != 3 {
		t.Errorf("agents/history = %+v %+v %+v", s.QemuAgent, s.OvirtAgent, s.ExecutedCommands)
	}
	if s.Truncated != nil {
		t.Errorf("truncated = %+v", s.Truncated)
	}
}

func TestOneWritePerChangeAndZeroWhenUnchanged(t *testing.T) {
	needEnv(t)
	c := newCounting()
	p := startPublisher(t, nodeA, c)
	uuid := newUUID()
	d := sampleDesired(uuid, "vm-change")
	mustUpsert(t, p, d)
	settle(t, p)
	name := ObjectName("vm-change", uuid)
	before := getStatus(t, nsDefault, name)
	w0 := c.writes.Load()

	for range 20 { // unchanged publish cycles
		mustUpsert(t, p, sampleDesired(uuid, "vm-change"))
		settle(t, p)
	}
	if got := c.writes.Load() - w0; got != 0 {
		t.Fatalf("unchanged cycles wrote %d times", got)
	}
	if rv := getStatus(t, nsDefault, name).ResourceVersion; rv != before.ResourceVersion {
		t.Fatalf("resourceVersion changed %s -> %s without a change", before.ResourceVersion, rv)
	}

	d.Info.Hostname.Name = "web2"
	mustUpsert(t, p, d)
	settle(t, p)
	after := getStatus(t, nsDefault, name)
	if got := c.writes.Load() - w0; got != 1 {
		t.Fatalf("one guest change caused %d writes, want 1", got)
	}
	if after.ResourceVersion == before.ResourceVersion || after.Generation != before.Generation {
		t.Errorf("rv %s->%s generation %d->%d", before.ResourceVersion, after.ResourceVersion, before.Generation, after.Generation)
	}
	if after.Status.Hostname != "web2" {
		t.Errorf("hostname = %q", after.Status.Hostname)
	}
}

func TestCoalescing(t *testing.T) {
	needEnv(t)
	c := newCounting()
	p := startPublisher(t, nodeA, c, withMinInterval(2*time.Second))
	uuid := newUUID()
	d := sampleDesired(uuid, "vm-coalesce")
	mustUpsert(t, p, d)
	settle(t, p)
	w0 := c.writes.Load()
	for i := range 50 { // all within the 2 s interval after the first write
		d.Info.Hostname.Name = "h" + strings.Repeat("x", i)
		mustUpsert(t, p, d)
	}
	settle(t, p)
	if got := c.writes.Load() - w0; got != 1 {
		t.Errorf("50 quick updates caused %d writes, want 1", got)
	}
	if h := getStatus(t, nsDefault, ObjectName("vm-coalesce", uuid)).Status.Hostname; h != d.Info.Hostname.Name {
		t.Errorf("hostname = %q, want the latest", h)
	}
}

func TestRestartWithSameDataWritesNothing(t *testing.T) {
	needEnv(t)
	c1 := newCounting()
	clk := newClock()
	p1 := startPublisher(t, nodeA, c1, clk.opt)
	uuid := newUUID()
	mustUpsert(t, p1, sampleDesired(uuid, "vm-restart"))
	settle(t, p1)
	rv := getStatus(t, nsDefault, ObjectName("vm-restart", uuid)).ResourceVersion

	clk.advance(time.Hour)
	c2 := newCounting()
	p2 := startPublisher(t, nodeA, c2, clk.opt) // a new agentd incarnation; p1 idles
	d := sampleDesired(uuid, "vm-restart")
	d.ExecutedCommands = nil // history is kept from the object
	mustUpsert(t, p2, d)
	settle(t, p2)
	if got := c2.writes.Load(); got != 0 {
		o := getStatus(t, nsDefault, ObjectName("vm-restart", uuid))
		b, _ := json.MarshalIndent(o.Status, "", " ")
		t.Fatalf("restart with unchanged data wrote %d times; object:\n%s", got, b)
	}
	if got := getStatus(t, nsDefault, ObjectName("vm-restart", uuid)).ResourceVersion; got != rv {
		t.Errorf("resourceVersion changed")
	}
}

func TestDisconnectFlipsConditionsKeepsData(t *testing.T) {
	needEnv(t)
	c := newCounting()
	clk := newClock()
	p := startPublisher(t, nodeA, c, clk.opt)
	uuid := newUUID()
	d := sampleDesired(uuid, "vm-disconnect")
	mustUpsert(t, p, d)
	settle(t, p)
	name := ObjectName("vm-disconnect", uuid)
	t0 := clk.at()

	clk.advance(time.Minute)
	d.Agents.QGA.Channel = guest.ChannelDisconnected
	d.Agents.QGA.Responsive = false
	d.Stale = map[guest.Group]bool{guest.GroupHostname: true}
	mustUpsert(t, p, d)
	settle(t, p)
	s := getStatus(t, nsDefault, name).Status
	if s.Hostname != "web1" || s.OS == nil || len(s.Interfaces) != 2 {
		t.Fatalf("data blanked on disconnect: %+v", s)
	}
	qc := meta.FindStatusCondition(s.Conditions, v1alpha1.ConditionQemuAgentConnected)
	oc := meta.FindStatusCondition(s.Conditions, v1alpha1.ConditionOvirtAgentConnected)
	st := meta.FindStatusCondition(s.Conditions, v1alpha1.ConditionStale)
	if qc.Status != metav1.ConditionFalse || qc.Reason != ReasonDisconnected || !qc.LastTransitionTime.Equal(ptrTime(clk.at())) {
		t.Errorf("QemuAgentConnected = %+v", qc)
	}
	if oc.Status != metav1.ConditionTrue || !oc.LastTransitionTime.Equal(&t0) {
		t.Errorf("OvirtAgentConnected lastTransitionTime moved: %+v", oc)
	}
	if st.Status != metav1.ConditionTrue || !strings.Contains(st.Message, "Hostname") {
		t.Errorf("Stale = %+v", st)
	}
	if s.ActiveAgents != v1alpha1.ActiveAgentsOGA || !meta.IsStatusConditionTrue(s.Conditions, v1alpha1.ConditionAgentConnected) {
		t.Errorf("activeAgents = %s", s.ActiveAgents)
	}
	if g := findGroup(s.DataGroups, "Hostname"); g == nil || !g.Stale || !g.LastChanged.Equal(&t0) {
		t.Errorf("Hostname group = %+v (content unchanged, so lastChanged must stay)", g)
	}
}

func ptrTime(t metav1.Time) *metav1.Time { return &t }

func TestTransitionTimesStableAcrossUnrelatedChanges(t *testing.T) {
	needEnv(t)
	c := newCounting()
	clk := newClock()
	p := startPublisher(t, nodeA, c, clk.opt)
	uuid := newUUID()
	d := sampleDesired(uuid, "vm-ltt")
	mustUpsert(t, p, d)
	settle(t, p)
	t0 := clk.at()
	clk.advance(10 * time.Minute)
	d.Info.Hostname.Name = "renamed"
	mustUpsert(t, p, d)
	settle(t, p)
	s := getStatus(t, nsDefault, ObjectName("vm-ltt", uuid)).Status
	for _, cd := range s.Conditions {
		if !cd.LastTransitionTime.Equal(&t0) {
			t.Errorf("condition %s lastTransitionTime moved to %v", cd.Type, cd.LastTransitionTime)
		}
	}
	t1 := clk.at()
	if g := findGroup(s.DataGroups, "Hostname"); !g.LastChanged.Equal(&t1) {
		t.Errorf("Hostname lastChanged = %v, want %v", g.LastChanged, t1)
	}
	if g := findGroup(s.DataGroups, "OS"); !g.LastChanged.Equal(&t0) {
		t.Errorf("OS lastChanged = %v, want %v", g.LastChanged, t0)
	}
}

func TestVolatileThreshold(t *testing.T) {
	needEnv(t)
	c := newCounting()
	p := startPublisher(t, nodeA, c)
	uuid := newUUID()
	d := sampleDesired(uuid, "vm-volatile")
	mustUpsert(t, p, d)
	settle(t, p)
	w0 := c.writes.Load()

	d.Info.Memory.FreeBytes += 40 << 20 // 1 % of 4 GiB
	d.Info.Filesystems.List[0].UsedBytes += 100 << 20
	mustUpsert(t, p, d)
	settle(t, p)
	if got := c.writes.Load() - w0; got != 0 {
		t.Fatalf("small volatile change caused %d writes", got)
	}
	d.Info.Memory.FreeBytes += 400 << 20 // now ~10 % away from the published value
	mustUpsert(t, p, d)
	settle(t, p)
	if got := c.writes.Load() - w0; got != 1 {
		t.Fatalf("significant memory change caused %d writes, want 1", got)
	}
	s := getStatus(t, nsDefault, ObjectName("vm-volatile", uuid)).Status
	if *s.Memory.FreeBytes != int64(d.Info.Memory.FreeBytes) {
		t.Errorf("freeBytes = %d, want %d", *s.Memory.FreeBytes, d.Info.Memory.FreeBytes)
	}
	if *s.Filesystems[0].UsedBytes != 3<<30 {
		t.Errorf("usedBytes = %d, want the previously published value", *s.Filesystems[0].UsedBytes)
	}
}

func TestHostileGuestIsAccepted(t *testing.T) {
	needEnv(t)
	c := newCounting()
	p := startPublisher(t, nodeA, c)
	uuid := newUUID()
	huge := strings.Repeat("é<\x01", 1<<20/4) + "\xff\xfe"
	d := sampleDesired(uuid, strings.Repeat("Ünïcødé name! ", 200))
	d.Info.Hostname.Name = huge
	d.Info.OS.PrettyName = huge
	apps := make([]string, 100_000)
	for i := range apps {
		apps[i] = huge[:600]
	}
	apps[0] = huge
	d.Info.Applications.List = apps
	ifs := make([]guest.Interface, 10_000)
	addrs := make([]string, 200)
	for i := range addrs {
		addrs[i] = "10.0.0.1/8" + strings.Repeat("x", 100)
	}
	for i := range ifs {
		ifs[i] = guest.Interface{Name: huge[:2000], MAC: huge[:100], IPv4: addrs, IPv6: addrs}
	}
	d.Info.Network.Interfaces = ifs
	fss := make([]guest.Filesystem, 5000)
	for i := range fss {
		fss[i] = guest.Filesystem{Mountpoint: huge[:5000], Type: "x", TotalBytes: ^uint64(0), UsedBytes: ^uint64(0) - 1,
			HasUsage: true, Disks: addrs}
	}
	d.Info.Filesystems.List = fss
	d.Info.Containers = &guest.Containers{List: make([]guest.Container, 1000)}
	for i := range d.Info.Containers.List {
		d.Info.Containers.List[i] = guest.Container{ID: huge[:300], Names: addrs, Image: huge[:2000], Command: huge[:2000]}
	}
	d.Info.PCIDevices = &guest.PCIDevices{List: make([]guest.PCIDevice, 5000)}
	for i := range d.Info.PCIDevices.List {
		d.Info.PCIDevices.List[i] = guest.PCIDevice{VendorID: 0xffff, DeviceID: uint16(i), DriverName: huge[:2000],
			DriverVersion: huge[:2000], DriverDate: "9999-99-99"}
	}
	d.Info.VCPUs.Online = 1 << 30
	d.Info.Timezone.OffsetMinutes = -99999
	d.Info.Session.State = "Hacked"
	d.Info.Session.LastUser = huge
	d.Info.Session.LastLogin = time.Unix(1<<40, 0)
	d.Info.Session.LastLogout = time.Unix(-1<<40, 0)
	d.Agents.QGA.LastErrorClass = "Bogus"
	d.Agents.QGA.Supported = append(addrs, addrs...)
	d.Agents.OGA.APIVersion = 99
	mustUpsert(t, p, d)
	settle(t, p)

	o := getStatus(t, nsDefault, ObjectName(d.Domain.Name, uuid))
	s := o.Status
	if s.Truncated == nil || s.Truncated.Applications == 0 || s.Truncated.Interfaces == 0 || s.Truncated.Strings == 0 ||
		s.Truncated.Addresses == 0 || s.Truncated.Filesystems == 0 || s.Truncated.PCIDevices < 5000-v1alpha1.MaxPCIDevices {
		t.Fatalf("truncated = %+v", s.Truncated)
	}
	raw, _ := json.Marshal(o)
	if len(raw) > DefaultMaxStatusBytes+64<<10 {
		t.Errorf("object is %d bytes", len(raw))
	}
	if s.Hostname == "" || len([]rune(s.Hostname)) > 255 || *s.VCPUs != 16384 || s.Timezone.OffsetMinutes != -1440 ||
		s.Session != "Unknown" || s.QemuAgent.LastErrorClass != "" || *s.OvirtAgent.APIVersion != 3 {
		t.Errorf("sanitising failed: hostname %d runes, vcpus %d, tz %d, session %q", len([]rune(s.Hostname)), *s.VCPUs,
			s.Timezone.OffsetMinutes, s.Session)
	}
	if ls := s.LastSession; ls == nil || len([]rune(ls.User)) != 256 || ls.LoginTime != nil || ls.LogoutTime != nil {
		t.Errorf("last session not sanitised: %+v", ls)
	}
	for _, pd := range s.PCIDevices { // the size guard may have dropped them all (counted above)
		if pd.DriverDate != "" || len([]rune(pd.DriverName)) > 256 || len([]rune(pd.DriverVersion)) > 128 {
			t.Fatalf("PCI device not sanitised: date %q, name %d runes", pd.DriverDate, len([]rune(pd.DriverName)))
		}
	}
	t.Logf("hostile guest: object %d bytes, truncated %+v", len(raw), *s.Truncated)

	// Unchanged hostile data: no further write.
	if got := upsertWrites(t, p, c, d); got != 0 {
		t.Errorf("unchanged hostile data wrote %d times", got)
	}
}

func TestRemoveDeletes(t *testing.T) {
	needEnv(t)
	c := newCounting()
	p := startPublisher(t, nodeA, c)
	uuid := newUUID()
	mustUpsert(t, p, sampleDesired(uuid, "vm-remove"))
	settle(t, p)
	name := ObjectName("vm-remove", uuid)
	if !exists(t, nsDefault, name) {
		t.Fatal("not created")
	}
	if err := p.Remove(uuid); err != nil {
		t.Fatal(err)
	}
	settle(t, p)
	if exists(t, nsDefault, name) {
		t.Fatal("not deleted")
	}
	p.mu.Lock()
	n := len(p.entries)
	p.mu.Unlock()
	if n != 0 {
		t.Errorf("%d entries left", n)
	}
}

func TestDeleteRacesWithAdoption(t *testing.T) {
	needEnv(t)
	ca := newCounting()
	pa := startPublisher(t, nodeA, ca)
	uuid := newUUID()
	d := sampleDesired(uuid, "vm-race")
	mustUpsert(t, pa, d)
	settle(t, pa)
	name := ObjectName("vm-race", uuid)
	// Simulate: node A read the object (naming A) just before node B adopted it.
	var stale v1alpha1.GuestAgentStatus
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: nsDefault, Name: name}, &stale); err != nil {
		t.Fatal(err)
	}
	adopted := stale.DeepCopy()
	adopted.Spec.NodeName = nodeB
	adopted.Labels[v1alpha1.LabelNode] = nodeB
	if err := env.Client.Update(context.Background(), adopted); err != nil {
		t.Fatal(err)
	}
	err := env.Client.Delete(context.Background(), &stale,
		client.Preconditions{UID: &stale.UID, ResourceVersion: &stale.ResourceVersion})
	if !apierrors.IsConflict(err) {
		t.Fatalf("delete with stale resourceVersion: %v, want a conflict", err)
	}
	if err := pa.Remove(uuid); err != nil {
		t.Fatal(err)
	}
	settle(t, pa)
	if !exists(t, nsDefault, name) {
		t.Fatal("the adopted object was deleted")
	}
}

func TestNamespacePlacementAndOptOut(t *testing.T) {
	needEnv(t)
	c := newCounting()
	p := startPublisher(t, nodeA, c)
	uuid := newUUID()
	d := sampleDesired(uuid, "vm-place")
	d.Domain.Namespace = nsTenant
	mustUpsert(t, p, d)
	settle(t, p)
	name := ObjectName("vm-place", uuid)
	if !exists(t, nsTenant, name) || exists(t, nsDefault, name) {
		t.Fatal("not placed in tenant namespace")
	}
	d.Domain.Namespace = ""
	d.ExecutedCommands = nil // the history must move with the object
	mustUpsert(t, p, d)
	settle(t, p)
	if exists(t, nsTenant, name) || !exists(t, nsDefault, name) {
		t.Fatal("not moved to the default namespace")
	}
	if s := getStatus(t, nsDefault, name).Status; s.Hostname != "web1" || len(s.ExecutedCommands) != 1 {
		t.Errorf("moved object lacks status: %+v", s)
	}
	d.Domain.OptOut = true
	mustUpsert(t, p, d)
	settle(t, p)
	if exists(t, nsDefault, name) {
		t.Fatal("opted-out domain still published")
	}
	if upsertWrites(t, p, c, d) != 0 {
		t.Error("repeated opt-out wrote")
	}
	d.Domain.OptOut = false
	mustUpsert(t, p, d)
	settle(t, p)
	if !exists(t, nsDefault, name) {
		t.Fatal("opt-in did not publish again")
	}
}

func TestRetriesKeepLatestState(t *testing.T) {
	needEnv(t)
	c := newCounting()
	p := startPublisher(t, nodeA, c, quietLogger)
	uuid := newUUID()
	d := sampleDesired(uuid, "vm-retry")
	down := apierrors.NewServiceUnavailable("apiserver down (injected)")
	c.failNext(8, down)
	mustUpsert(t, p, d)
	for i := range 5 { // updates while the apiserver is "down", each after one more write attempt
		before := c.attempts.Load()
		d.Info.Hostname.Name = "v" + strings.Repeat("1", i+1)
		mustUpsert(t, p, d)
		NewWithT(t).Eventually(c.attempts.Load).WithTimeout(10*time.Second).Should(BeNumerically(">", before), "a write attempt after update %d", i)
	}
	settle(t, p)
	s := getStatus(t, nsDefault, ObjectName("vm-retry", uuid)).Status
	if s.Hostname != d.Info.Hostname.Name {
		t.Fatalf("hostname = %q, want the latest %q", s.Hostname, d.Info.Hostname.Name)
	}
	if c.attempts.Load()-c.writes.Load() != 8 {
		t.Errorf("injected failures consumed: %d", c.attempts.Load()-c.writes.Load())
	}
}

// jumpClock is the real clock plus an offset the test can advance.
type jumpClock struct{ offset atomic.Int64 }

func (c *jumpClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *jumpClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

func TestRejectedStatusIsNotRetriedUntilItChanges(t *testing.T) {
	needEnv(t)
	c := newCounting()
	clk := &jumpClock{} // real time that the test can move forward
	p := startPublisher(t, nodeA, c, quietLogger, func(o *Options) { o.Clock = clk.now })
	uuid := newUUID()
	d := sampleDesired(uuid, "vm-invalid")
	mustUpsert(t, p, d)
	settle(t, p)
	invalid := apierrors.NewInvalid(schema.GroupKind{Group: "guestagent.io", Kind: "GuestAgentStatus"}, "x",
		field.ErrorList{field.TooLong(field.NewPath("status", "hostname"), "", 255)})
	c.failNext(1, invalid)
	d.Info.Hostname.Name = "rejected"
	mustUpsert(t, p, d)
	settle(t, p)
	a := c.attempts.Load()
	// a later second: the changed group's lastChanged would differ; still the refused content
	clk.advance(1100 * time.Millisecond)
	for range 5 {
		mustUpsert(t, p, d)
		settle(t, p)
	}
	if c.attempts.Load() != a {
		t.Fatalf("rejected status retried %d times", c.attempts.Load()-a)
	}
	d.Info.Hostname.Name = "accepted"
	mustUpsert(t, p, d)
	settle(t, p)
	if h := getStatus(t, nsDefault, ObjectName("vm-invalid", uuid)).Status.Hostname; h != "accepted" {
		t.Fatalf("hostname = %q", h)
	}
}

func TestRemoveAllExceptDeletesVanishedDomains(t *testing.T) {
	needEnv(t)
	c := newCounting()
	p1 := startPublisher(t, nodeA, c)
	gone, kept := newUUID(), newUUID()
	mustUpsert(t, p1, sampleDesired(gone, "vm-gone"))
	mustUpsert(t, p1, sampleDesired(kept, "vm-kept"))
	settle(t, p1)
	p2 := startPublisher(t, nodeA, newCounting())
	// p2 has not seen either domain yet; only "kept" is still present after discovery.
	if err := p2.RemoveAllExcept(context.Background(), []string{kept}); err != nil {
		t.Fatal(err)
	}
	settle(t, p2)
	if exists(t, nsDefault, ObjectName("vm-gone", gone)) || !exists(t, nsDefault, ObjectName("vm-kept", kept)) {
		t.Fatal("wrong objects pruned")
	}
}

func TestReleaseKeepsObjectForTheDestination(t *testing.T) {
	needEnv(t)
	ca, cb := newCounting(), newCounting()
	pa := startPublisher(t, nodeA, ca)
	uuid := newUUID()
	d := sampleDesired(uuid, "vm-release")
	mustUpsert(t, pa, d)
	settle(t, pa)
	name := ObjectName("vm-release", uuid)
	uid := getStatus(t, nsDefault, name).UID
	w := ca.writes.Load()
	// The source learns that the domain migrated away before the destination has seen it.
	if err := pa.Release(uuid); err != nil {
		t.Fatal(err)
	}
	settle(t, pa)
	if ca.writes.Load() != w+1 || !exists(t, nsDefault, name) {
		t.Fatalf("Release made %d writes, want 1 (the release marker), or deleted the object", ca.writes.Load()-w)
	}
	if r := getStatus(t, nsDefault, name).Status.Release; r == nil || r.NodeName != nodeA {
		t.Fatalf("release marker %+v, want node %s's", r, nodeA)
	}
	pb := startPublisher(t, nodeB, cb)
	mustUpsert(t, pb, d)
	settle(t, pb)
	o := getStatus(t, nsDefault, name)
	if o.UID != uid || o.Spec.NodeName != nodeB || len(o.Status.ExecutedCommands) != 1 {
		t.Fatalf("destination did not adopt the same object: uid %s->%s node %s history %d", uid, o.UID,
			o.Spec.NodeName, len(o.Status.ExecutedCommands))
	}
}
