package publish

import (
	"cmp"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/api/v1alpha1"
)

// builder turns a Desired into the status to apply, given the last applied status.
type builder struct {
	memory, filesystem Threshold
	maxBytes           int
}

// build returns the desired status of d. Values that did not change significantly, condition
// transition times and data-group change times are carried over from prev, so that an unchanged
// guest yields a status semantically equal to prev. prev may be nil.
func (b *builder) build(d *Desired, prev *v1alpha1.GuestAgentStatusStatus, now metav1.Time) *v1alpha1.GuestAgentStatusStatus {
	if prev == nil {
		prev = &v1alpha1.GuestAgentStatusStatus{}
	}
	info := d.Info
	if info == nil {
		info = &guest.Info{}
	}
	l := &limiter{}
	st := &v1alpha1.GuestAgentStatusStatus{}
	fillIdentity(st, info, l)
	fillLists(st, info, l)
	fillNumbers(st, info)
	carried := carryOver(d, info, st, prev)
	d = withCarried(d, carried, prev)
	b.keepInsignificant(st, prev)
	fillAgents(st, d.Agents, l)
	st.Domain = runState(d.RunState, l)
	st.ExecutedCommands = mergeHistory(prev.ExecutedCommands, d.ExecutedCommands, l)
	guardSize(st, l, b.maxBytes)
	st.PrimaryIP = primaryIP(st.Interfaces)
	st.Conditions = conditions(d, prev.Conditions, now)
	st.DataGroups = dataGroups(d, info, st, prev, now)
	if l.t != (v1alpha1.TruncationCounts{}) {
		t := l.t
		st.Truncated = &t
	}
	return st
}

// semanticEqual is equality.Semantic.DeepEqual with reflect.DeepEqual as a fast path: statuses
// built here and statuses read back (after normalizeTimes) are usually identical field by field,
// and the plain comparison is several times cheaper than the semantic one with its custom funcs.
func semanticEqual(a, b any) bool {
	return reflect.DeepEqual(a, b) || equality.Semantic.DeepEqual(a, b)
}

// normalizeTimes rewrites the times of a status read from the API (which decodes them in the
// local zone) to the UTC form build produces, so that the fast path of semanticEqual applies.
func normalizeTimes(st *v1alpha1.GuestAgentStatusStatus) {
	utc := func(t *metav1.Time) {
		if t != nil && !t.IsZero() {
			*t = statusTime(t.Time)
		}
	}
	for i := range st.Conditions {
		utc(&st.Conditions[i].LastTransitionTime)
	}
	for i := range st.DataGroups {
		utc(st.DataGroups[i].LastChanged)
	}
	for i := range st.Users {
		utc(st.Users[i].LoginTime)
	}
	if ls := st.LastSession; ls != nil {
		utc(ls.LoginTime)
		utc(ls.LogoutTime)
	}
	for i := range st.ExecutedCommands {
		utc(&st.ExecutedCommands[i].Time)
	}
}

// statusTime converts t to the second-precision UTC time the API stores, so that a value read
// back compares equal to the value written.
func statusTime(t time.Time) metav1.Time {
	return metav1.NewTime(time.Unix(t.Unix(), 0).UTC())
}

func fillIdentity(st *v1alpha1.GuestAgentStatusStatus, info *guest.Info, l *limiter) {
	if h := info.Hostname; h != nil {
		st.Hostname = l.str(h.Name, 255)
		st.FQDN = l.str(h.FQDN, 255)
	}
	if o := info.OS; o != nil {
		st.OS = &v1alpha1.GuestOSInfo{
			Type:          osType(o.Type),
			Name:          l.str(o.Name, 256),
			ID:            l.str(o.ID, 128),
			Version:       l.str(o.Version, 256),
			VersionID:     l.str(o.VersionID, 128),
			PrettyName:    l.str(o.PrettyName, 256),
			Variant:       l.str(o.Variant, 256),
			KernelRelease: l.str(o.KernelRelease, 256),
			KernelVersion: l.str(o.KernelVersion, 256),
			Arch:          l.str(o.Arch, 64),
		}
	}
	if tz := info.Timezone; tz != nil {
		st.Timezone = &v1alpha1.GuestTimezone{
			Zone:          l.str(tz.Zone, 128),
			OffsetMinutes: clampInt32(tz.OffsetMinutes, -1440, 1440),
		}
	}
	if s := info.Session; s != nil {
		st.Session = sessionState(s.State)
		st.LastSession = lastSession(s, l)
	}
}

// lastSession is the previous session as the agent reported it; nil when it reported none.
func lastSession(s *guest.Session, l *limiter) *v1alpha1.GuestLastSession {
	out := v1alpha1.GuestLastSession{User: l.str(s.LastUser, 256),
		LoginTime: apiTime(s.LastLogin), LogoutTime: apiTime(s.LastLogout)}
	if out == (v1alpha1.GuestLastSession{}) {
		return nil
	}
	return &out
}

// apiTime is t as the API stores it, or nil for a zero time or one the API cannot represent
// (before 1970 or after 9999, e.g. a hostile guest's): the apiserver would reject the whole status.
func apiTime(t time.Time) *metav1.Time {
	if y := t.UTC().Year(); t.IsZero() || y < 1970 || y > 9999 {
		return nil
	}
	st := statusTime(t)
	return &st
}

func osType(t guest.OSType) string {
	switch t {
	case guest.OSTypeLinux, guest.OSTypeWindows, guest.OSTypeUnknown:
		return string(t)
	case "":
		return ""
	}
	return string(guest.OSTypeUnknown)
}

func sessionState(s guest.SessionState) string {
	switch s {
	case guest.SessionUnknown, guest.SessionLoggedOn, guest.SessionActive, guest.SessionLocked,
		guest.SessionLoggedOff:
		return string(s)
	}
	return string(guest.SessionUnknown)
}

func fillLists(st *v1alpha1.GuestAgentStatusStatus, info *guest.Info, l *limiter) {
	if u := info.Users; u != nil {
		st.Users = users(u.List, l)
	}
	if n := info.Network; n != nil {
		st.Interfaces = interfaces(n.Interfaces, l)
	}
	if f := info.Filesystems; f != nil {
		st.Filesystems = filesystems(f.List, l)
	}
	if d := info.Disks; d != nil && len(d.Mappings) > 0 {
		n := capLen(len(d.Mappings), v1alpha1.MaxDiskMappings, &l.t.DiskMappings)
		st.DiskMappings = make([]v1alpha1.GuestDiskMapping, n)
		for i, m := range d.Mappings[:n] {
			st.DiskMappings[i] = v1alpha1.GuestDiskMapping{Serial: l.str(m.Serial, 256), Device: l.str(m.Device, 256)}
		}
	}
	if a := info.Applications; a != nil {
		st.Applications = l.strs(a.List, v1alpha1.MaxApplications, 512, &l.t.Applications)
	}
	if c := info.Containers; c != nil {
		st.Containers = containers(c.List, l)
	}
	if p := info.PCIDevices; p != nil {
		st.PCIDevices = pciDevices(p.List, l)
	}
}

func pciDevices(in []guest.PCIDevice, l *limiter) []v1alpha1.GuestPCIDevice {
	if len(in) == 0 {
		return nil
	}
	n := capLen(len(in), v1alpha1.MaxPCIDevices, &l.t.PCIDevices)
	out := make([]v1alpha1.GuestPCIDevice, n)
	for i, d := range in[:n] {
		out[i] = v1alpha1.GuestPCIDevice{
			VendorID: ptr.To(int32(d.VendorID)), DeviceID: ptr.To(int32(d.DeviceID)),
			DriverName: l.str(d.DriverName, 256), DriverVersion: l.str(d.DriverVersion, 128),
			DriverDate: isoDate(d.DriverDate),
		}
	}
	return out
}

// isoDate returns s if it is a valid YYYY-MM-DD date, else "" (a guest may send anything).
func isoDate(s string) string {
	if len(s) != len(time.DateOnly) {
		return ""
	}
	if _, err := time.Parse(time.DateOnly, s); err != nil {
		return ""
	}
	return s
}

func users(in []guest.User, l *limiter) []v1alpha1.GuestUser {
	if len(in) == 0 {
		return nil
	}
	n := capLen(len(in), v1alpha1.MaxUsers, &l.t.Users)
	out := make([]v1alpha1.GuestUser, n)
	for i, u := range in[:n] {
		out[i] = v1alpha1.GuestUser{Name: l.str(u.Name, 256), Domain: l.str(u.Domain, 256)}
		out[i].LoginTime = apiTime(u.LoginTime)
	}
	return out
}

func interfaces(in []guest.Interface, l *limiter) []v1alpha1.GuestInterface {
	if len(in) == 0 {
		return nil
	}
	n := capLen(len(in), v1alpha1.MaxInterfaces, &l.t.Interfaces)
	out := make([]v1alpha1.GuestInterface, n)
	for i, itf := range in[:n] {
		out[i] = v1alpha1.GuestInterface{
			Name: l.str(itf.Name, 256),
			MAC:  l.str(itf.MAC, 64),
			IPv4: l.strs(itf.IPv4, v1alpha1.MaxAddresses, 64, &l.t.Addresses),
			IPv6: l.strs(itf.IPv6, v1alpha1.MaxAddresses, 64, &l.t.Addresses),
		}
	}
	return out
}

func filesystems(in []guest.Filesystem, l *limiter) []v1alpha1.GuestFilesystem {
	if len(in) == 0 {
		return nil
	}
	n := capLen(len(in), v1alpha1.MaxFilesystems, &l.t.Filesystems)
	out := make([]v1alpha1.GuestFilesystem, n)
	for i, fs := range in[:n] {
		out[i] = v1alpha1.GuestFilesystem{
			Mountpoint: l.str(fs.Mountpoint, 1024),
			Type:       l.str(fs.Type, 64),
			Disks:      l.strs(fs.Disks, v1alpha1.MaxDisksPerFS, 256, nil),
		}
		if fs.HasUsage {
			out[i].TotalBytes = ptr.To(clampU64(fs.TotalBytes))
			out[i].UsedBytes = ptr.To(clampU64(fs.UsedBytes))
		}
	}
	return out
}

func containers(in []guest.Container, l *limiter) []v1alpha1.GuestContainer {
	if len(in) == 0 {
		return nil
	}
	n := capLen(len(in), v1alpha1.MaxContainers, &l.t.Containers)
	out := make([]v1alpha1.GuestContainer, n)
	for i, c := range in[:n] {
		out[i] = v1alpha1.GuestContainer{
			ID:      l.str(c.ID, 256),
			Names:   l.strs(c.Names, v1alpha1.MaxContainerNames, 256, nil),
			Image:   l.str(c.Image, 1024),
			Status:  l.str(c.Status, 256),
			Command: l.str(c.Command, 1024),
		}
	}
	return out
}

func fillNumbers(st *v1alpha1.GuestAgentStatusStatus, info *guest.Info) {
	if v := info.VCPUs; v != nil {
		st.VCPUs = ptr.To(clampInt32(v.Online, 0, 16384))
	}
	if m := info.Memory; m != nil {
		gm := &v1alpha1.GuestMemory{
			TotalBytes:      bytesPtr(m.TotalBytes),
			FreeBytes:       bytesPtr(m.FreeBytes),
			UnusedBytes:     bytesPtr(m.UnusedBytes),
			UsableBytes:     bytesPtr(m.UsableBytes),
			DiskCachesBytes: bytesPtr(m.DiskCachesBytes),
			BuffersBytes:    bytesPtr(m.BuffersBytes),
			CachedBytes:     bytesPtr(m.CachedBytes),
			SwapTotalBytes:  bytesPtr(m.SwapTotalBytes),
			SwapUsedBytes:   bytesPtr(m.SwapUsedBytes),
			BalloonBytes:    bytesPtr(m.BalloonBytes),
			HostRSSBytes:    bytesPtr(m.HostRSSBytes),
		}
		if m.HasCounters {
			gm.SwapInBytes, gm.SwapOutBytes = ptr.To(clampU64(m.SwapInBytes)), ptr.To(clampU64(m.SwapOutBytes))
			gm.MajorPageFaults, gm.MinorPageFaults = ptr.To(clampU64(m.MajorPageFaults)), ptr.To(clampU64(m.MinorPageFaults))
		}
		if m.HasRates {
			gm.SwapInPerSecond, gm.SwapOutPerSecond = ptr.To(clampU64(m.SwapInRate)), ptr.To(clampU64(m.SwapOutRate))
			gm.PageFaultsPerSecond = ptr.To(clampU64(m.PageFaultRate))
			gm.MajorPageFaultsPerSecond = ptr.To(clampU64(m.MajorPageFaultRate))
		}
		if *gm != (v1alpha1.GuestMemory{}) {
			st.Memory = gm
		}
	}
}

// bytesPtr maps the guest model's "0 = not reported" to an absent field.
func bytesPtr(v uint64) *int64 {
	if v == 0 {
		return nil
	}
	return ptr.To(clampU64(v))
}

func fillAgents(st *v1alpha1.GuestAgentStatusStatus, a AgentState, l *limiter) {
	if a.QGA.Present {
		st.QemuAgent = &v1alpha1.QemuAgentInfo{
			ChannelState:        channelState(a.QGA.Channel),
			Version:             l.str(a.QGA.Version, 64),
			SupportedCommands:   commandSet(a.QGA.Supported, l),
			UnsupportedCommands: commandSet(a.QGA.Unsupported, l),
			LastErrorClass:      errorClass(a.QGA.LastErrorClass),
			LastError:           l.str(a.QGA.LastError, 1024),
		}
		if a.QGA.FSFreeze == guest.FreezeFrozen || a.QGA.FSFreeze == guest.FreezeThawed {
			st.QemuAgent.FSFreezeStatus = a.QGA.FSFreeze
		}
	}
	if a.OGA.Present {
		st.OvirtAgent = &v1alpha1.OvirtAgentInfo{ChannelState: channelState(a.OGA.Channel)}
		if a.OGA.Channel == guest.ChannelConnected {
			st.OvirtAgent.APIVersion = ptr.To(clampInt32(a.OGA.APIVersion, 0, 3))
		}
	}
	st.ActiveAgents = activeAgents(a)
}

var runStates = []string{"Running", "Paused", "ShuttingDown", "ShutOff", "Crashed", "PMSuspended", "Unknown"}

func runState(rs *RunState, l *limiter) *v1alpha1.DomainRunState {
	if rs == nil {
		return nil
	}
	out := &v1alpha1.DomainRunState{State: "Unknown", Reason: l.str(rs.Reason, 64)}
	if slices.Contains(runStates, rs.State) {
		out.State = rs.State
	}
	return out
}

func activeAgents(a AgentState) v1alpha1.ActiveAgents {
	q := a.QGA.Present && a.QGA.Channel == guest.ChannelConnected
	o := ogaPresent(a.OGA)
	switch {
	case q && o:
		return v1alpha1.ActiveAgentsBoth
	case q:
		return v1alpha1.ActiveAgentsQGA
	case o:
		return v1alpha1.ActiveAgentsOGA
	}
	return v1alpha1.ActiveAgentsNone
}

// ogaPresent reports whether an oVirt guest agent is there: its channel is connected and it has
// spoken on it. QEMU keeps an oVirt VM's channel open whether or not the guest runs an agent.
func ogaPresent(o guest.OGAState) bool {
	return o.Present && o.Channel == guest.ChannelConnected && o.Spoken
}

func channelState(c guest.ChannelState) v1alpha1.ChannelState {
	switch c {
	case guest.ChannelConnected:
		return v1alpha1.ChannelConnected
	case guest.ChannelDisconnected:
		return v1alpha1.ChannelDisconnected
	}
	return v1alpha1.ChannelUnknown
}

var errorClasses = []string{"Timeout", "NotConnected", "Unsupported", "AgentError", "DomainNotRunning", "LibvirtError", "Frozen"}

func errorClass(c string) string {
	if slices.Contains(errorClasses, c) {
		return c
	}
	return ""
}

// commandSet returns a sorted, de-duplicated, capped list (the schema declares a set).
func commandSet(in []string, l *limiter) []string {
	if len(in) == 0 {
		return nil
	}
	out := l.strs(in, len(in), 64, nil)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > v1alpha1.MaxCommands {
		out = out[:v1alpha1.MaxCommands]
	}
	return out
}

// primaryIP returns the first global unicast IPv4 address (not loopback, not link-local) of the
// interfaces, else the first such IPv6 address, without prefix length.
func primaryIP(ifaces []v1alpha1.GuestInterface) string {
	for _, v6 := range []bool{false, true} {
		for _, itf := range ifaces {
			list := itf.IPv4
			if v6 {
				list = itf.IPv6
			}
			for _, s := range list {
				if a, ok := globalAddr(s); ok && a.Is4() != v6 {
					return a.String()
				}
			}
		}
	}
	return ""
}

func globalAddr(s string) (netip.Addr, bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	a = a.Unmap()
	ok := a.IsGlobalUnicast() && !a.IsLoopback() && !a.IsLinkLocalUnicast()
	return a.WithZone(""), ok
}

// mergeHistory unions the executed-command history on the object with new entries (by key, the
// first record wins), and keeps the newest MaxExecutedCommands, oldest first.
func mergeHistory(prev, add []v1alpha1.ExecutedCommand, l *limiter) []v1alpha1.ExecutedCommand {
	if len(add) == 0 {
		return prev
	}
	seen := make(map[string]bool, len(prev)+len(add))
	out := make([]v1alpha1.ExecutedCommand, 0, len(prev)+len(add))
	for _, e := range prev {
		seen[e.Key] = true
		out = append(out, e)
	}
	for _, e := range add {
		e.Key = l.str(e.Key, 600)
		if e.Key == "" || e.Action == "" || seen[e.Key] {
			continue
		}
		seen[e.Key] = true
		e.Time = statusTime(e.Time.Time)
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b v1alpha1.ExecutedCommand) int {
		return cmp.Or(a.Time.Compare(b.Time.Time), cmp.Compare(a.Key, b.Key))
	})
	if len(out) > v1alpha1.MaxExecutedCommands {
		out = out[len(out)-v1alpha1.MaxExecutedCommands:]
	}
	return out
}

// dataGroups lists, per published group, its source, staleness and the time its published
// content last changed (carried over from prev while the content is semantically unchanged).
func dataGroups(d *Desired, info *guest.Info, st, prev *v1alpha1.GuestAgentStatusStatus, now metav1.Time) []v1alpha1.DataGroupStatus {
	var out []v1alpha1.DataGroupStatus
	for _, g := range guest.Groups {
		if !info.Has(g) && !d.Stale[g] {
			continue // carried groups are stale
		}
		src := d.Sources[g]
		if src != v1alpha1.SourceQemu && src != v1alpha1.SourceOvirt && src != v1alpha1.SourceLibvirt {
			continue
		}
		e := v1alpha1.DataGroupStatus{Name: string(g), Source: src, Stale: d.Stale[g], LastChanged: &now}
		if e.Stale {
			e.StaleReason = staleReason(d, g, src)
		}
		if p := findGroup(prev.DataGroups, string(g)); p != nil && p.LastChanged != nil &&
			semanticEqual(project(st, g), project(prev, g)) {
			e.LastChanged = p.LastChanged.DeepCopy()
		}
		out = append(out, e)
	}
	return out
}

// staleReason says why group g (from src) is stale: carried over without a report, refused by a
// frozen guest, or its agent stopped answering.
func staleReason(d *Desired, g guest.Group, src v1alpha1.DataSource) v1alpha1.StaleReason {
	switch {
	case d.carried[g]:
		return v1alpha1.StaleNotReported
	case src == v1alpha1.SourceQemu && d.Agents.QGA.FSFreeze == guest.FreezeFrozen:
		return v1alpha1.StaleFilesystemsFrozen
	}
	return v1alpha1.StaleAgentNotResponsive
}

func findGroup(list []v1alpha1.DataGroupStatus, name string) *v1alpha1.DataGroupStatus {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

// project returns the part of st that publishes group g.
func project(st *v1alpha1.GuestAgentStatusStatus, g guest.Group) any {
	switch g {
	case guest.GroupHostname:
		return [2]string{st.Hostname, st.FQDN}
	case guest.GroupOS:
		return st.OS
	case guest.GroupTimezone:
		return st.Timezone
	case guest.GroupUsers:
		return st.Users
	case guest.GroupSession:
		return [2]any{st.Session, st.LastSession}
	case guest.GroupNetwork:
		return st.Interfaces
	case guest.GroupFilesystems:
		return st.Filesystems
	case guest.GroupDisks:
		return st.DiskMappings
	case guest.GroupVCPUs:
		return st.VCPUs
	case guest.GroupMemory:
		return st.Memory
	case guest.GroupApplications:
		return st.Applications
	case guest.GroupContainers:
		return st.Containers
	case guest.GroupPCIDevices:
		return st.PCIDevices
	}
	return nil
}

// Condition reasons set by the publisher.
const (
	ReasonConnected           = "Connected"
	ReasonDisconnected        = "Disconnected"
	ReasonChannelStateUnknown = "ChannelStateUnknown"
	ReasonNoChannel           = "NoChannel"
	ReasonChannelOpenNoAgent  = "ChannelOpenNoAgent"
	ReasonAgentAnswered       = "AgentAnswered"
	ReasonNoAnswer            = "NoAnswer"
	ReasonRefreshFailed       = "RefreshFailed"
	ReasonFilesystemsFrozen   = "FilesystemsFrozen"
	ReasonUpToDate            = "UpToDate"
)

// conditions returns the five conditions, carrying lastTransitionTime over from prev for every
// condition whose status did not flip.
func conditions(d *Desired, prev []metav1.Condition, now metav1.Time) []metav1.Condition {
	a := d.Agents
	out := []metav1.Condition{
		anyConnected(a),
		channelCondition(v1alpha1.ConditionQemuAgentConnected, "QEMU guest agent", a.QGA.Present, a.QGA.Channel),
		ovirtCondition(a.OGA),
		responsive(a),
		stale(d),
	}
	for i := range out {
		out[i].LastTransitionTime = now
		if p := meta.FindStatusCondition(prev, out[i].Type); p != nil && p.Status == out[i].Status {
			out[i].LastTransitionTime = p.LastTransitionTime
		}
	}
	return out
}

func cond(typ string, s metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg}
}

func anyConnected(a AgentState) metav1.Condition {
	const t = v1alpha1.ConditionAgentConnected
	q, o := a.QGA.Present, a.OGA.Present
	ogaCh := a.OGA.Channel
	if ogaCh == guest.ChannelConnected && !a.OGA.Spoken {
		ogaCh = guest.ChannelDisconnected // an open channel with no agent behind it
	}
	switch {
	case q && a.QGA.Channel == guest.ChannelConnected || o && ogaCh == guest.ChannelConnected:
		return cond(t, metav1.ConditionTrue, ReasonConnected, "A guest agent is connected.")
	case !q && !o:
		return cond(t, metav1.ConditionFalse, ReasonNoChannel, "The domain has no guest agent channel.")
	case (!q || a.QGA.Channel != guest.ChannelDisconnected) && (!o || ogaCh != guest.ChannelDisconnected):
		return cond(t, metav1.ConditionUnknown, ReasonChannelStateUnknown, "The guest agent channel state is not known yet.")
	}
	return cond(t, metav1.ConditionFalse, ReasonDisconnected, "No guest agent is connected.")
}

func channelCondition(typ, agent string, present bool, c guest.ChannelState) metav1.Condition {
	switch {
	case !present:
		return cond(typ, metav1.ConditionFalse, ReasonNoChannel, "The domain has no "+agent+" channel.")
	case c == guest.ChannelConnected:
		return cond(typ, metav1.ConditionTrue, ReasonConnected, "The "+agent+" is connected.")
	case c == guest.ChannelDisconnected:
		return cond(typ, metav1.ConditionFalse, ReasonDisconnected, "The "+agent+" is not connected.")
	}
	return cond(typ, metav1.ConditionUnknown, ReasonChannelStateUnknown, "The "+agent+" channel state is not known yet.")
}

// ovirtCondition is OvirtAgentConnected: the agent is connected once its channel is open and it
// has spoken on it.
func ovirtCondition(o guest.OGAState) metav1.Condition {
	const typ = v1alpha1.ConditionOvirtAgentConnected
	if o.Present && o.Channel == guest.ChannelConnected && !o.Spoken {
		return cond(typ, metav1.ConditionFalse, ReasonChannelOpenNoAgent,
			"The oVirt guest agent channel is open, but no agent has spoken on it.")
	}
	return channelCondition(typ, "oVirt guest agent", o.Present, o.Channel)
}

func responsive(a AgentState) metav1.Condition {
	const t = v1alpha1.ConditionAgentResponsive
	if a.QGA.Present && a.QGA.Responsive || a.OGA.Present && a.OGA.Responsive {
		return cond(t, metav1.ConditionTrue, ReasonAgentAnswered, "A guest agent answered recently.")
	}
	return cond(t, metav1.ConditionFalse, ReasonNoAnswer, "No guest agent answered recently.")
}

func stale(d *Desired) metav1.Condition {
	var groups []string
	for _, g := range guest.Groups {
		if d.Stale[g] && (d.Info.Has(g) || d.carried[g]) {
			groups = append(groups, string(g))
		}
	}
	if len(groups) == 0 {
		return cond(v1alpha1.ConditionStale, metav1.ConditionFalse, ReasonUpToDate, "All published data is current.")
	}
	if d.Agents.QGA.FSFreeze == guest.FreezeFrozen {
		return cond(v1alpha1.ConditionStale, metav1.ConditionTrue, ReasonFilesystemsFrozen,
			"The guest's filesystems are frozen; these data groups could not be refreshed and show the last known content: "+
				strings.Join(groups, ", ")+".")
	}
	return cond(v1alpha1.ConditionStale, metav1.ConditionTrue, ReasonRefreshFailed,
		"These data groups could not be refreshed and show the last known content: "+strings.Join(groups, ", ")+".")
}
