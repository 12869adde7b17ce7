// Package guest owns the agent-neutral model of what a guest agent reports about its guest.
//
// Both agent stacks (agentd/oga for the oVirt guest agent, agentd/qga for the QEMU guest agent)
// translate their replies into an Info. GuestAgentService (agentd/service) merges the Infos of one
// domain group by group, and the publisher turns the merged Info into a GuestAgentStatus. Nothing
// in this package knows about either agent's wire format or about Kubernetes.
//
// An Info is partial: every data group is a pointer, and nil means "this source has no data for
// the group" (never fetched, unsupported, or failed). A non-nil group with empty content means the
// agent positively reported "nothing" (for example zero logged-in users). Consumers must keep that
// distinction: an error never turns known data into nil-and-then-empty.
package guest

import (
	"slices"
	"time"
)

// Group names one data group of an Info. Precedence, freshness and sources are tracked per group.
type Group string

// The data groups, in the order they are published.
const (
	GroupHostname     Group = "Hostname"
	GroupOS           Group = "OS"
	GroupTimezone     Group = "Timezone"
	GroupUsers        Group = "Users"
	GroupSession      Group = "Session"
	GroupNetwork      Group = "Network"
	GroupFilesystems  Group = "Filesystems"
	GroupDisks        Group = "Disks"
	GroupVCPUs        Group = "VCPUs"
	GroupMemory       Group = "Memory"
	GroupApplications Group = "Applications"
	GroupContainers   Group = "Containers"
	GroupPCIDevices   Group = "PCIDevices"
)

// Groups lists every Group in publishing order.
var Groups = []Group{
	GroupHostname, GroupOS, GroupTimezone, GroupUsers, GroupSession, GroupNetwork, GroupFilesystems,
	GroupDisks, GroupVCPUs, GroupMemory, GroupApplications, GroupContainers, GroupPCIDevices,
}

// Info is one source's (or the merged) view of a guest. See the package comment for nil semantics.
type Info struct {
	Hostname     *Hostname
	OS           *OS
	Timezone     *Timezone
	Users        *Users
	Session      *Session
	Network      *Network
	Filesystems  *Filesystems
	Disks        *Disks
	VCPUs        *VCPUs
	Memory       *Memory
	Applications *Applications
	Containers   *Containers
	PCIDevices   *PCIDevices
}

// Hostname is the guest's own name for itself.
type Hostname struct {
	// Name is the short or full host name as the agent reports it.
	Name string
	// FQDN is the fully qualified name, when the agent reports one separately.
	FQDN string
}

// OSType classifies the guest operating system family.
type OSType string

// Known OS families.
const (
	OSTypeLinux   OSType = "Linux"
	OSTypeWindows OSType = "Windows"
	OSTypeUnknown OSType = "Unknown"
)

// OS describes the guest operating system.
type OS struct {
	Type          OSType
	Name          string // e.g. "Debian GNU/Linux", "Microsoft Windows Server 2022"
	ID            string // e.g. "debian", "mswindows"
	Version       string // e.g. "12 (bookworm)"
	VersionID     string // e.g. "12"
	PrettyName    string
	Variant       string // codename or edition
	KernelRelease string // e.g. "6.1.0-56-amd64"
	KernelVersion string
	// Arch is normalised: x86_64, x86, ppc, ppcle, ppc64, ppc64le, aarch64, s390x, or "unknown".
	Arch string
}

// Timezone is the guest's configured time zone.
type Timezone struct {
	Zone          string // e.g. "Europe/Prague", "UTC"
	OffsetMinutes int    // east of UTC
}

// User is one logged-in user.
type User struct {
	Name      string
	Domain    string    // Windows domain, empty elsewhere
	LoginTime time.Time // zero when unknown
}

// Users is the set of logged-in users (may be empty: nobody logged in).
type Users struct {
	List []User
}

// SessionState is the desktop session state (only the oVirt agent reports it).
type SessionState string

// Session states, named as the API publishes them.
const (
	SessionUnknown   SessionState = "Unknown"
	SessionLoggedOn  SessionState = "UserLoggedOn"
	SessionActive    SessionState = "Active"
	SessionLocked    SessionState = "Locked"
	SessionLoggedOff SessionState = "LoggedOff"
)

// Session is the guest desktop session.
type Session struct {
	State SessionState
	// LastUser and LastLogin/LastLogout record the previous session, when known.
	LastUser   string
	LastLogin  time.Time
	LastLogout time.Time
}

// Interface is one guest network interface.
type Interface struct {
	Name string
	MAC  string // lower-case colon form, empty when unknown
	// IPv4 and IPv6 hold addresses, with "/prefix" when the agent reports a prefix.
	IPv4 []string
	IPv6 []string
}

// Network is the set of guest network interfaces.
type Network struct {
	Interfaces []Interface
}

// Filesystem is one mounted guest filesystem.
type Filesystem struct {
	Mountpoint string
	Type       string
	// TotalBytes and UsedBytes are valid only when HasUsage is true (agents omit them for some
	// volumes, e.g. Windows "System Reserved").
	TotalBytes uint64
	UsedBytes  uint64
	HasUsage   bool
	// Disks lists the block devices backing the filesystem (e.g. "/dev/vda"), when known.
	Disks []string
}

// Filesystems is the set of mounted guest filesystems.
type Filesystems struct {
	List []Filesystem
}

// DiskMapping maps a disk serial (as the host configured it) to the guest device name.
type DiskMapping struct {
	Serial string
	Device string
}

// Disks is the guest's serial → device mapping.
type Disks struct {
	Mappings []DiskMapping
}

// VCPUs is the guest's view of its virtual CPUs.
type VCPUs struct {
	Online int
}

// Memory holds the guest's memory figures in bytes. Zero means "not reported", except for the
// counters, which are valid when HasCounters is set, and the rates, valid when HasRates is set.
// Sources: the oVirt guest agent's heartbeat, or libvirt's memory statistics (the balloon
// driver's guest-side figures plus the host-side balloon size and QEMU RSS).
type Memory struct {
	TotalBytes      uint64 // the memory the guest sees (Linux MemTotal)
	FreeBytes       uint64 // free, in the agent's sense (oVirt: free + buffers + cached)
	UnusedBytes     uint64 // strictly unused memory (Linux MemFree)
	UsableBytes     uint64 // reclaimable without swapping (Linux MemAvailable; libvirt only)
	DiskCachesBytes uint64 // page cache the guest can drop without I/O (libvirt only)
	BuffersBytes    uint64
	CachedBytes     uint64
	SwapTotalBytes  uint64
	SwapUsedBytes   uint64
	// BalloonBytes is the memory the balloon leaves to the guest (libvirt "actual"); for a
	// domain without a balloon device, its current memory size.
	BalloonBytes uint64
	// HostRSSBytes is the resident set size of the domain's QEMU process on the host.
	HostRSSBytes uint64

	// Counters since the guest booted (libvirt): valid when HasCounters.
	HasCounters     bool
	SwapInBytes     uint64
	SwapOutBytes    uint64
	MajorPageFaults uint64
	MinorPageFaults uint64
	// StatsUpdated is when the guest last refreshed its balloon statistics (zero when unknown).
	StatsUpdated time.Time

	// Per-second rates (oVirt guest agent): valid when HasRates.
	HasRates           bool
	SwapInRate         uint64
	SwapOutRate        uint64
	PageFaultRate      uint64
	MajorPageFaultRate uint64
}

// HasGuestStats reports whether m carries figures only the guest itself knows (its total,
// usable or unused memory), rather than only the host-side balloon size and RSS.
func (m *Memory) HasGuestStats() bool {
	return m != nil && (m.TotalBytes > 0 || m.UsableBytes > 0 || m.UnusedBytes > 0 || m.FreeBytes > 0)
}

// Applications lists installed applications ("name-version" strings as the agent reports them).
type Applications struct {
	List []string
}

// Container is one container running in the guest.
type Container struct {
	ID      string
	Names   []string
	Image   string
	Status  string
	Command string
}

// Containers lists containers running in the guest.
type Containers struct {
	List []Container
}

// PCIDevice is one PCI device as the guest sees it, with its driver.
type PCIDevice struct {
	VendorID      uint16
	DeviceID      uint16
	DriverName    string
	DriverVersion string
	DriverDate    string // ISO date (YYYY-MM-DD), UTC
}

// PCIDevices lists the guest's PCI devices.
type PCIDevices struct {
	List []PCIDevice
}

// DeepCopy returns a copy that shares no memory with i. A nil Info copies to nil.
func (i *Info) DeepCopy() *Info {
	if i == nil {
		return nil
	}
	out := &Info{
		Hostname: ptrCopy(i.Hostname),
		OS:       ptrCopy(i.OS),
		Timezone: ptrCopy(i.Timezone),
		Session:  ptrCopy(i.Session),
		VCPUs:    ptrCopy(i.VCPUs),
		Memory:   ptrCopy(i.Memory),
	}
	if i.Users != nil {
		out.Users = &Users{List: slices.Clone(i.Users.List)}
	}
	if i.Network != nil {
		n := &Network{Interfaces: make([]Interface, len(i.Network.Interfaces))}
		for k, itf := range i.Network.Interfaces {
			itf.IPv4 = slices.Clone(itf.IPv4)
			itf.IPv6 = slices.Clone(itf.IPv6)
			n.Interfaces[k] = itf
		}
		out.Network = n
	}
	if i.Filesystems != nil {
		f := &Filesystems{List: make([]Filesystem, len(i.Filesystems.List))}
		for k, fs := range i.Filesystems.List {
			fs.Disks = slices.Clone(fs.Disks)
			f.List[k] = fs
		}
		out.Filesystems = f
	}
	if i.Disks != nil {
		out.Disks = &Disks{Mappings: slices.Clone(i.Disks.Mappings)}
	}
	if i.Applications != nil {
		out.Applications = &Applications{List: slices.Clone(i.Applications.List)}
	}
	if i.Containers != nil {
		c := &Containers{List: make([]Container, len(i.Containers.List))}
		for k, ct := range i.Containers.List {
			ct.Names = slices.Clone(ct.Names)
			c.List[k] = ct
		}
		out.Containers = c
	}
	if i.PCIDevices != nil {
		out.PCIDevices = &PCIDevices{List: slices.Clone(i.PCIDevices.List)}
	}
	return out
}

func ptrCopy[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// Has reports whether the Info carries data for group g.
func (i *Info) Has(g Group) bool {
	if i == nil {
		return false
	}
	switch g {
	case GroupHostname:
		return i.Hostname != nil
	case GroupOS:
		return i.OS != nil
	case GroupTimezone:
		return i.Timezone != nil
	case GroupUsers:
		return i.Users != nil
	case GroupSession:
		return i.Session != nil
	case GroupNetwork:
		return i.Network != nil
	case GroupFilesystems:
		return i.Filesystems != nil
	case GroupDisks:
		return i.Disks != nil
	case GroupVCPUs:
		return i.VCPUs != nil
	case GroupMemory:
		return i.Memory != nil
	case GroupApplications:
		return i.Applications != nil
	case GroupContainers:
		return i.Containers != nil
	case GroupPCIDevices:
		return i.PCIDevices != nil
	}
	return false
}

// CopyGroup sets group g of dst to a deep copy of the same group of src (nil when src lacks it).
// Only that group is copied.
func CopyGroup(dst, src *Info, g Group) {
	var only Info
	if src != nil {
		assignGroup(&only, src, g)
	}
	assignGroup(dst, only.DeepCopy(), g)
}

// assignGroup sets group g of dst to the same group of src (shared, not copied).
func assignGroup(dst, src *Info, g Group) {
	switch g {
	case GroupHostname:
		dst.Hostname = src.Hostname
	case GroupOS:
		dst.OS = src.OS
	case GroupTimezone:
		dst.Timezone = src.Timezone
	case GroupUsers:
		dst.Users = src.Users
	case GroupSession:
		dst.Session = src.Session
	case GroupNetwork:
		dst.Network = src.Network
	case GroupFilesystems:
		dst.Filesystems = src.Filesystems
	case GroupDisks:
		dst.Disks = src.Disks
	case GroupVCPUs:
		dst.VCPUs = src.VCPUs
	case GroupMemory:
		dst.Memory = src.Memory
	case GroupApplications:
		dst.Applications = src.Applications
	case GroupContainers:
		dst.Containers = src.Containers
	case GroupPCIDevices:
		dst.PCIDevices = src.PCIDevices
	}
}

// ChannelState is the state of an agent's virtio channel as libvirt (or the socket) reports it.
type ChannelState string

// Channel states.
const (
	ChannelUnknown      ChannelState = "Unknown"
	ChannelConnected    ChannelState = "Connected"
	ChannelDisconnected ChannelState = "Disconnected"
)
