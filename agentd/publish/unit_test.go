package publish

import (
	"maps"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/api/v1alpha1"
)

func TestObjectName(t *testing.T) {
	const uuid = "0123abcd-0000-4000-8000-000000000000"
	for in, want := range map[string]string{
		"web1":                         "web1-0123abcd",
		"Web Server #1":                "web-server-1-0123abcd",
		"--a..b__c--":                  "a-b-c-0123abcd",
		"":                             "domain-0123abcd",
		"ÜÖÄ":                          "domain-0123abcd",
		strings.Repeat("a", 300):       strings.Repeat("a", 54) + "-0123abcd",
		strings.Repeat("a", 53) + "-b": strings.Repeat("a", 53) + "-0123abcd",
	} {
		got := ObjectName(in, uuid)
		if got != want {
			t.Errorf("ObjectName(%q) = %q, want %q", in, got, want)
		}
		if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
			t.Errorf("ObjectName(%q) = %q is not a DNS-1123 label: %v", in, got, errs)
		}
	}
	if _, err := NormalizeUUID("not-a-uuid"); err == nil {
		t.Error("bad UUID accepted")
	}
	if u, _ := NormalizeUUID("0123ABCD-0000-4000-8000-000000000000"); u != uuid {
		t.Errorf("NormalizeUUID = %q", u)
	}
}

func TestPrimaryIP(t *testing.T) {
	ifs := []v1alpha1.GuestInterface{
		{IPv4: []string{"127.0.0.1/8", "169.254.0.5/16"}, IPv6: []string{"fe80::1/64", "2001:db8::1/64"}},
		{IPv4: []string{"garbage", "10.1.2.3/8"}},
	}
	if got := primaryIP(ifs); got != "10.1.2.3" {
		t.Errorf("primaryIP = %q", got)
	}
	if got := primaryIP(ifs[:1]); got != "2001:db8::1" {
		t.Errorf("primaryIP v6 = %q", got)
	}
	if got := primaryIP(nil); got != "" {
		t.Errorf("primaryIP(nil) = %q", got)
	}
}

func TestLimiterString(t *testing.T) {
	l := &limiter{}
	s := l.str(strings.Repeat("é", 10)+"\xff", 5)
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) != 5 || l.t.Strings != 1 {
		t.Errorf("str = %q (%d runes), strings=%d", s, utf8.RuneCountInString(s), l.t.Strings)
	}
	if got := l.str("ok\xff", 10); got != "ok\uFFFD" || l.t.Strings != 1 {
		t.Errorf("invalid UTF-8 = %q", got)
	}
}

func TestThreshold(t *testing.T) {
	th := Threshold{Relative: 0.05, Absolute: 100}
	for _, c := range []struct {
		oldV, newV, total int64
		want              bool
	}{
		{1000, 1000, 10000, false},
		{1000, 1400, 10000, false}, // 4 % < 5 %
		{1000, 1500, 10000, true},  // 5 %
		{1000, 950, 0, false},      // absolute floor
		{1000, 1100, 0, true},
	} {
		if got := th.significant(c.oldV, c.newV, c.total); got != c.want {
			t.Errorf("significant(%d,%d,%d) = %v", c.oldV, c.newV, c.total, got)
		}
	}
	if (Threshold{}).significant(1, 1, 0) || !(Threshold{}).significant(1, 2, 0) {
		t.Error("zero threshold must publish every change and only changes")
	}
}

func TestBuildIsStableAndCarriesTimes(t *testing.T) {
	b := &builder{memory: DefaultThreshold, filesystem: DefaultThreshold, maxBytes: DefaultMaxStatusBytes}
	clk := newClock()
	d := sampleDesired("0123abcd-0000-4000-8000-000000000000", "x")
	first := b.build(&d, nil, clk.at())
	clk.advance(3600e9)
	second := b.build(&d, first, clk.at())
	if !equality.Semantic.DeepEqual(first, second) {
		t.Fatal("unchanged input built a different status")
	}
	// The agents went away and the memory group is no longer reported: the last known memory
	// stays published, marked stale (never blanked by an absence of news).
	answering := d.Agents
	d.Agents = AgentState{}
	d.Info.Memory = nil
	third := b.build(&d, second, clk.at())
	if third.ActiveAgents != v1alpha1.ActiveAgentsNone || third.Memory == nil || third.Hostname != "web1" {
		t.Errorf("third = %+v", third)
	}
	if g := findGroup(third.DataGroups, string(guest.GroupMemory)); g == nil || !g.Stale {
		t.Errorf("a carried group must be listed as stale: %+v", g)
	}
	if c := meta.FindStatusCondition(third.Conditions, v1alpha1.ConditionStale); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Stale condition: %+v", c)
	}
	// The agents answer again but have not reported memory yet: still the last known, stale.
	d.Agents = answering
	fourth := b.build(&d, third, clk.at())
	if fourth.Memory == nil || !findGroup(fourth.DataGroups, string(guest.GroupMemory)).Stale {
		t.Errorf("a group not reported yet must stay, stale: %+v", fourth.Memory)
	}
	// New content replaces it and it is fresh again.
	d.Info.Memory = &guest.Memory{TotalBytes: 1 << 30}
	fifth := b.build(&d, fourth, clk.at())
	if fifth.Memory == nil || ptr.Deref(fifth.Memory.TotalBytes, 0) != 1<<30 || findGroup(fifth.DataGroups, string(guest.GroupMemory)).Stale {
		t.Errorf("fresh content must replace the carried one: %+v", fifth.Memory)
	}
}

func TestOptionsValidation(t *testing.T) {
	for name, o := range map[string]Options{
		"no client":     {NodeName: "n", DefaultNamespace: "ns"},
		"bad node":      {NodeName: "Bad_Node", DefaultNamespace: "ns", Client: &countingClient{}},
		"long node":     {NodeName: strings.Repeat("n", 64), DefaultNamespace: "ns", Client: &countingClient{}},
		"bad ns":        {NodeName: "n", DefaultNamespace: "a.b", Client: &countingClient{}},
		"bad threshold": {NodeName: "n", DefaultNamespace: "ns", Client: &countingClient{}, MemoryThreshold: &Threshold{Relative: 2}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A login time the API cannot represent (a hostile guest's) is dropped instead of making the
// apiserver reject the whole status; the user stays listed.
func TestUnrepresentableLoginTimeIsDropped(t *testing.T) {
	b := &builder{memory: DefaultThreshold, filesystem: DefaultThreshold, maxBytes: DefaultMaxStatusBytes}
	d := sampleDesired("0123abcd-0000-4000-8000-000000000001", "y")
	d.Info.Users = &guest.Users{List: []guest.User{
		{Name: "future", LoginTime: time.Unix(1<<40, 0)},
		{Name: "now", LoginTime: time.Unix(1767225600, 0)},
	}}
	st := b.build(&d, nil, newClock().at())
	if len(st.Users) != 2 || st.Users[0].LoginTime != nil || st.Users[1].LoginTime == nil {
		t.Fatalf("users = %+v", st.Users)
	}
}

// PCI devices and the previous session are published as the agents report them, within caps:
// invalid driver dates are dropped, lists are capped and counted, and the group's source is
// recorded.
func TestPCIDevicesAndLastSession(t *testing.T) {
	b := &builder{memory: DefaultThreshold, filesystem: DefaultThreshold, maxBytes: DefaultMaxStatusBytes}
	d := sampleDesired("0123abcd-0000-4000-8000-000000000002", "y")
	devs := make([]guest.PCIDevice, v1alpha1.MaxPCIDevices+3)
	for i := range devs {
		devs[i] = guest.PCIDevice{VendorID: 0x1af4, DeviceID: 0x1000, DriverName: "netkvm", DriverVersion: "100.95.104.26200",
			DriverDate: "2024-07-15"}
	}
	devs[1].DriverDate = "2024-13-45"
	devs[2].DriverDate = "15.07.2024"
	d.Info.PCIDevices = &guest.PCIDevices{List: devs}
	d.Sources = maps.Clone(d.Sources)
	d.Sources[guest.GroupPCIDevices] = v1alpha1.SourceQemu
	login := time.Date(2026, 11, 30, 8, 0, 0, 500, time.FixedZone("x", 3600))
	d.Info.Session = &guest.Session{State: guest.SessionLoggedOff, LastUser: "alice", LastLogin: login,
		LastLogout: login.Add(time.Hour)}
	st := b.build(&d, nil, newClock().at())
	if len(st.PCIDevices) != v1alpha1.MaxPCIDevices || st.Truncated == nil || st.Truncated.PCIDevices != 3 {
		t.Fatalf("%d PCI devices, truncated %+v", len(st.PCIDevices), st.Truncated)
	}
	p := st.PCIDevices[0]
	if *p.VendorID != 0x1af4 || *p.DeviceID != 0x1000 || p.DriverName != "netkvm" || p.DriverVersion != "100.95.104.26200" ||
		p.DriverDate != "2024-07-15" {
		t.Errorf("device = %+v", p)
	}
	if st.PCIDevices[1].DriverDate != "" || st.PCIDevices[2].DriverDate != "" {
		t.Errorf("invalid dates published: %q %q", st.PCIDevices[1].DriverDate, st.PCIDevices[2].DriverDate)
	}
	ls := st.LastSession
	if ls == nil || ls.User != "alice" || !ls.LoginTime.Equal(&metav1.Time{Time: time.Unix(login.Unix(), 0)}) ||
		ls.LogoutTime.Sub(ls.LoginTime.Time) != time.Hour || st.Session != "LoggedOff" {
		t.Errorf("session %q, last session %+v", st.Session, ls)
	}
	if g := findGroup(st.DataGroups, "PCIDevices"); g == nil || g.Source != v1alpha1.SourceQemu {
		t.Errorf("PCIDevices group = %+v", g)
	}
	// no previous session reported: no block
	d.Info.Session = &guest.Session{State: guest.SessionActive}
	if st := b.build(&d, nil, newClock().at()); st.LastSession != nil {
		t.Errorf("last session without a report: %+v", st.LastSession)
	}
}
