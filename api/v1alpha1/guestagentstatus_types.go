package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// List caps. agentd truncates longer lists and records how many entries it dropped, so a hostile
// or huge guest can never push the object towards etcd's size limit.
const (
	MaxInterfaces       = 256
	MaxAddresses        = 64
	MaxFilesystems      = 256
	MaxDisksPerFS       = 16
	MaxDiskMappings     = 256
	MaxUsers            = 64
	MaxApplications     = 1024
	MaxContainers       = 256
	MaxPCIDevices       = 256
	MaxContainerNames   = 16
	MaxCommands         = 256
	MaxExecutedCommands = 32
)

// Condition types of a GuestAgentStatus.
const (
	// ConditionAgentConnected is True while at least one guest agent channel is connected.
	ConditionAgentConnected = "AgentConnected"
	// ConditionQemuAgentConnected mirrors the QEMU guest agent channel state.
	ConditionQemuAgentConnected = "QemuAgentConnected"
	// ConditionOvirtAgentConnected mirrors the oVirt guest agent connection.
	ConditionOvirtAgentConnected = "OvirtAgentConnected"
	// ConditionAgentResponsive is True while some agent answered recently.
	ConditionAgentResponsive = "AgentResponsive"
	// ConditionStale is True while published data could not be refreshed (it is kept, not blanked).
	ConditionStale = "Stale"
)

// ActiveAgents summarises which agents are connected, for `kubectl get`.
// +kubebuilder:validation:Enum=None;QGA;OGA;Both
type ActiveAgents string

// ActiveAgents values.
const (
	ActiveAgentsNone ActiveAgents = "None"
	ActiveAgentsQGA  ActiveAgents = "QGA"
	ActiveAgentsOGA  ActiveAgents = "OGA"
	ActiveAgentsBoth ActiveAgents = "Both"
)

// ChannelState is the state of an agent channel.
// +kubebuilder:validation:Enum=Unknown;Connected;Disconnected
type ChannelState string

// ChannelState values.
const (
	ChannelUnknown      ChannelState = "Unknown"
	ChannelConnected    ChannelState = "Connected"
	ChannelDisconnected ChannelState = "Disconnected"
)

// GuestAgentStatusSpec identifies the libvirt domain a GuestAgentStatus describes.
type GuestAgentStatusSpec struct {
	// domainName is the libvirt domain name, verbatim (it need not be a valid Kubernetes name).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	DomainName string `json:"domainName"`

	// domainUUID is the libvirt domain UUID. It never changes for the life of the object.
	// +required
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`
	// +kubebuilder:validation:MaxLength=36
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="domainUUID is immutable"
	DomainUUID string `json:"domainUUID"`

	// nodeName is the node the domain currently runs on. It changes when the domain migrates.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	NodeName string `json:"nodeName"`
}

// GuestAgentStatusStatus is what the guest agents of the domain report, merged into one view that
// does not depend on which agent supplied a value.
type GuestAgentStatusStatus struct {
	// conditions are AgentConnected, QemuAgentConnected, OvirtAgentConnected, AgentResponsive, Stale.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// activeAgents tells which agents are connected: None, QGA, OGA or Both.
	// +optional
	ActiveAgents ActiveAgents `json:"activeAgents,omitempty"`

	// domain is the libvirt run state of the domain and libvirt's reason for it: whether the VM
	// runs, is paused (and why, e.g. for a migration or on an I/O error) or is shut off.
	// +optional
	Domain *DomainRunState `json:"domain,omitempty"`

	// qemuAgent describes the QEMU guest agent of the domain.
	// +optional
	QemuAgent *QemuAgentInfo `json:"qemuAgent,omitempty"`

	// ovirtAgent describes the oVirt guest agent of the domain.
	// +optional
	OvirtAgent *OvirtAgentInfo `json:"ovirtAgent,omitempty"`

	// hostname is the guest's host name.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	Hostname string `json:"hostname,omitempty"`

	// fqdn is the guest's fully qualified domain name.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	FQDN string `json:"fqdn,omitempty"`

	// primaryIP is the first global (non-loopback, non-link-local) guest address, IPv4 first.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	PrimaryIP string `json:"primaryIP,omitempty"`

	// os describes the guest operating system.
	// +optional
	OS *GuestOSInfo `json:"os,omitempty"`

	// timezone is the guest's time zone.
	// +optional
	Timezone *GuestTimezone `json:"timezone,omitempty"`

	// users are the users logged in to the guest.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Users []GuestUser `json:"users,omitempty"`

	// session is the guest desktop session state: Unknown, UserLoggedOn, Active, Locked, LoggedOff.
	// +optional
	// +kubebuilder:validation:Enum=Unknown;UserLoggedOn;Active;Locked;LoggedOff
	Session string `json:"session,omitempty"`

	// lastSession is the guest's previous desktop session (oVirt guest agent), when known.
	// +optional
	LastSession *GuestLastSession `json:"lastSession,omitempty"`

	// interfaces are the guest network interfaces.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Interfaces []GuestInterface `json:"interfaces,omitempty"`

	// filesystems are the guest's mounted filesystems.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Filesystems []GuestFilesystem `json:"filesystems,omitempty"`

	// diskMappings map host disk serials to guest device names.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	DiskMappings []GuestDiskMapping `json:"diskMappings,omitempty"`

	// vcpus is the number of online guest vCPUs.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=16384
	VCPUs *int32 `json:"vcpus,omitempty"`

	// memory holds the guest's memory figures. They reach this object only on significant change;
	// current values are exported as Prometheus metrics.
	// +optional
	Memory *GuestMemory `json:"memory,omitempty"`

	// applications are installed applications as the agents report them.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1024
	// +kubebuilder:validation:items:MaxLength=512
	Applications []string `json:"applications,omitempty"`

	// containers are containers running in the guest.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Containers []GuestContainer `json:"containers,omitempty"`

	// pciDevices are the guest's PCI devices with the driver the guest bound to each (QEMU guest
	// agent guest-get-devices, reported by Windows guests): what to check for virtio driver
	// updates.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	PCIDevices []GuestPCIDevice `json:"pciDevices,omitempty"`

	// truncated counts the list entries dropped because a list exceeded its cap.
	// +optional
	Truncated *TruncationCounts `json:"truncated,omitempty"`

	// dataGroups tells, per data group, which agent supplied it (for debugging; consumers must not
	// depend on it) and when its content last changed.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	DataGroups []DataGroupStatus `json:"dataGroups,omitempty"`

	// executedCommands is a bounded history of the commands executed on this domain, so that a
	// GuestAgentCommand re-created by a GitOps tool is not executed twice.
	// +optional
	// +listType=map
	// +listMapKey=key
	// +kubebuilder:validation:MaxItems=32
	ExecutedCommands []ExecutedCommand `json:"executedCommands,omitempty"`

	// release is the hand-over marker of a live migration: agentd on the node the object names
	// sets it when the domain left that node by migration, before or while the destination
	// adopts the object. The object is released (another node's agentd may take it over) only
	// while release.nodeName equals spec.nodeName; the admission policy refuses any other
	// take-over by an agentd. agentd writes it with its own field manager
	// (FieldOwnerAgentdRelease), and removes it when the domain comes back to the releasing node
	// before anyone adopted it. After an adoption it stays as the record of where the object came
	// from (the controller moves pending commands only along such a hand-over), until the next
	// release replaces it.
	// +optional
	Release *StatusRelease `json:"release,omitempty"`
}

// StatusRelease records that the agentd of a node released a GuestAgentStatus.
type StatusRelease struct {
	// nodeName is the node whose agentd released the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	NodeName string `json:"nodeName"`

	// time is when the domain left that node.
	// +required
	Time metav1.Time `json:"time"`
}

// DomainRunState is the libvirt run state of a domain.
type DomainRunState struct {
	// state is the run state: Running, Paused, ShuttingDown, ShutOff, Crashed, PMSuspended or
	// Unknown.
	// +required
	// +kubebuilder:validation:Enum=Running;Paused;ShuttingDown;ShutOff;Crashed;PMSuspended;Unknown
	State string `json:"state"`

	// reason is libvirt's reason for the state, e.g. Booted, Unpaused, Migrated (Running); User,
	// Migration, Save, IOError, Watchdog, PostCopy (Paused); Shutdown, Destroyed, Crashed,
	// Migrated, Saved, Failed (ShutOff); Panicked (Crashed). Unknown when libvirt gives none.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason,omitempty"`
}

// QemuAgentInfo describes the QEMU guest agent of a domain.
type QemuAgentInfo struct {
	// channelState is the state of the org.qemu.guest_agent.0 channel.
	// +optional
	ChannelState ChannelState `json:"channelState,omitempty"`

	// version is the agent version reported by guest-info.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Version string `json:"version,omitempty"`

	// supportedCommands are the enabled commands the agent advertises that agentd uses.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=64
	SupportedCommands []string `json:"supportedCommands,omitempty"`

	// unsupportedCommands are commands agentd would use but the agent lacks or has disabled.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=64
	UnsupportedCommands []string `json:"unsupportedCommands,omitempty"`

	// lastErrorClass classifies the last failed call: Timeout, NotConnected, Unsupported,
	// AgentError, DomainNotRunning, LibvirtError, or Frozen (disabled by the agent while the
	// filesystems are frozen).
	// +optional
	// +kubebuilder:validation:Enum=Timeout;NotConnected;Unsupported;AgentError;DomainNotRunning;LibvirtError;Frozen
	LastErrorClass string `json:"lastErrorClass,omitempty"`

	// lastError is the message of the last failed call.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	LastError string `json:"lastError,omitempty"`

	// fsFreezeStatus is Frozen while the guest's filesystems are frozen (the agent then answers
	// only a few commands and the data groups it cannot refresh are stale), Thawed after the
	// thaw; absent while not known.
	// +optional
	// +kubebuilder:validation:Enum=Frozen;Thawed
	FSFreezeStatus string `json:"fsFreezeStatus,omitempty"`
}

// OvirtAgentInfo describes the oVirt guest agent of a domain.
type OvirtAgentInfo struct {
	// channelState is the state of the ovirt-guest-agent.0 socket connection.
	// +optional
	ChannelState ChannelState `json:"channelState,omitempty"`

	// apiVersion is the negotiated protocol version (0-3). Hooks need 3.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3
	APIVersion *int32 `json:"apiVersion,omitempty"`
}

// GuestOSInfo describes the guest operating system.
type GuestOSInfo struct {
	// type is the OS family: Linux, Windows or Unknown.
	// +optional
	// +kubebuilder:validation:Enum=Linux;Windows;Unknown
	Type string `json:"type,omitempty"`
	// name is the OS name, e.g. "Debian GNU/Linux".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name,omitempty"`
	// id is the OS id, e.g. "debian" or "mswindows".
	// +optional
	// +kubebuilder:validation:MaxLength=128
	ID string `json:"id,omitempty"`
	// version is the OS version, e.g. "12 (bookworm)".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Version string `json:"version,omitempty"`
	// versionID is the machine-readable version, e.g. "12".
	// +optional
	// +kubebuilder:validation:MaxLength=128
	VersionID string `json:"versionID,omitempty"`
	// prettyName is the human-readable OS name.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	PrettyName string `json:"prettyName,omitempty"`
	// variant is the codename or edition.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Variant string `json:"variant,omitempty"`
	// kernelRelease is e.g. "6.1.0-56-amd64".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	KernelRelease string `json:"kernelRelease,omitempty"`
	// kernelVersion is the kernel build string.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	KernelVersion string `json:"kernelVersion,omitempty"`
	// arch is the normalised architecture (x86_64, x86, aarch64, ppc64le, s390x, … or unknown).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Arch string `json:"arch,omitempty"`
}

// GuestTimezone is the guest's time zone.
type GuestTimezone struct {
	// zone is the zone name, e.g. "Europe/Prague".
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Zone string `json:"zone,omitempty"`
	// offsetMinutes is the offset east of UTC.
	// +optional
	// +kubebuilder:validation:Minimum=-1440
	// +kubebuilder:validation:Maximum=1440
	OffsetMinutes int32 `json:"offsetMinutes,omitempty"`
}

// GuestUser is a logged-in user.
type GuestUser struct {
	// name is the user name.
	// +required
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name"`
	// domain is the Windows domain, if any.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Domain string `json:"domain,omitempty"`
	// loginTime is when the user logged in, when known.
	// +optional
	LoginTime *metav1.Time `json:"loginTime,omitempty"`
}

// GuestInterface is a guest network interface.
type GuestInterface struct {
	// name is the interface name in the guest.
	// +required
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name"`
	// mac is the hardware address.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	MAC string `json:"mac,omitempty"`
	// ipv4 are the IPv4 addresses, in CIDR form when the prefix is known.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	IPv4 []string `json:"ipv4,omitempty"`
	// ipv6 are the IPv6 addresses, in CIDR form when the prefix is known.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	IPv6 []string `json:"ipv6,omitempty"`
}

// GuestFilesystem is a mounted guest filesystem.
type GuestFilesystem struct {
	// mountpoint is where the filesystem is mounted (a drive letter path on Windows).
	// +required
	// +kubebuilder:validation:MaxLength=1024
	Mountpoint string `json:"mountpoint"`
	// type is the filesystem type, e.g. ext4 or NTFS.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Type string `json:"type,omitempty"`
	// totalBytes is the filesystem size. Values beyond int64 are clamped.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TotalBytes *int64 `json:"totalBytes,omitempty"`
	// usedBytes is the space in use; it is refreshed here only on significant change.
	// +optional
	// +kubebuilder:validation:Minimum=0
	UsedBytes *int64 `json:"usedBytes,omitempty"`
	// disks are the guest block devices backing the filesystem.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=256
	Disks []string `json:"disks,omitempty"`
}

// GuestDiskMapping maps a disk serial to a guest device.
type GuestDiskMapping struct {
	// serial is the disk serial as configured on the host.
	// +required
	// +kubebuilder:validation:MaxLength=256
	Serial string `json:"serial"`
	// device is the guest device name, e.g. /dev/vda.
	// +required
	// +kubebuilder:validation:MaxLength=256
	Device string `json:"device"`
}

// GuestMemory holds guest memory figures. Every field is optional: a source fills what it
// knows. With the Libvirt source (the balloon device's statistics) a guest with a balloon
// driver and a statistics period reports totalBytes, unusedBytes, usableBytes, diskCachesBytes,
// the swap and page-fault counters, balloonBytes and hostRSSBytes; a domain without a balloon
// device (or without a statistics period) only balloonBytes and hostRSSBytes. With the
// OvirtGuestAgent source: totalBytes, freeBytes, unusedBytes, buffersBytes, cachedBytes, the
// swap sizes and the per-second rates. Sizes are bytes. Volatile figures are updated here only
// on significant change; agentd's metrics carry exact current values.
type GuestMemory struct {
	// totalBytes is the memory the guest sees (Linux MemTotal; libvirt's "available").
	// +optional
	// +kubebuilder:validation:Minimum=0
	TotalBytes *int64 `json:"totalBytes,omitempty"`
	// freeBytes is free memory in the oVirt agent's sense (free + buffers + cache).
	// +optional
	// +kubebuilder:validation:Minimum=0
	FreeBytes *int64 `json:"freeBytes,omitempty"`
	// unusedBytes is strictly unused memory (Linux MemFree).
	// +optional
	// +kubebuilder:validation:Minimum=0
	UnusedBytes *int64 `json:"unusedBytes,omitempty"`
	// usableBytes is memory the guest can reclaim without swapping (Linux MemAvailable; libvirt's "usable").
	// +optional
	// +kubebuilder:validation:Minimum=0
	UsableBytes *int64 `json:"usableBytes,omitempty"`
	// diskCachesBytes is page cache the guest can drop without I/O (libvirt's "disk_caches").
	// +optional
	// +kubebuilder:validation:Minimum=0
	DiskCachesBytes *int64 `json:"diskCachesBytes,omitempty"`
	// buffersBytes is block-device buffer memory (oVirt agent's mem_buffers).
	// +optional
	// +kubebuilder:validation:Minimum=0
	BuffersBytes *int64 `json:"buffersBytes,omitempty"`
	// cachedBytes is page cache memory (oVirt agent's mem_cached).
	// +optional
	// +kubebuilder:validation:Minimum=0
	CachedBytes *int64 `json:"cachedBytes,omitempty"`
	// swapTotalBytes is the swap size.
	// +optional
	// +kubebuilder:validation:Minimum=0
	SwapTotalBytes *int64 `json:"swapTotalBytes,omitempty"`
	// swapUsedBytes is the swap in use.
	// +optional
	// +kubebuilder:validation:Minimum=0
	SwapUsedBytes *int64 `json:"swapUsedBytes,omitempty"`
	// balloonBytes is the memory the balloon currently leaves to the guest (libvirt's "actual"); for a domain without a balloon device, its current memory size.
	// +optional
	// +kubebuilder:validation:Minimum=0
	BalloonBytes *int64 `json:"balloonBytes,omitempty"`
	// hostRSSBytes is the resident set size of the domain's QEMU process on the host (libvirt's "rss").
	// +optional
	// +kubebuilder:validation:Minimum=0
	HostRSSBytes *int64 `json:"hostRSSBytes,omitempty"`
	// swapInBytes counts the data read from swap since the guest booted (libvirt's "swap_in").
	// +optional
	// +kubebuilder:validation:Minimum=0
	SwapInBytes *int64 `json:"swapInBytes,omitempty"`
	// swapOutBytes counts the data written to swap since the guest booted (libvirt's "swap_out").
	// +optional
	// +kubebuilder:validation:Minimum=0
	SwapOutBytes *int64 `json:"swapOutBytes,omitempty"`
	// majorPageFaults counts page faults that needed disk I/O since the guest booted (libvirt's "major_fault").
	// +optional
	// +kubebuilder:validation:Minimum=0
	MajorPageFaults *int64 `json:"majorPageFaults,omitempty"`
	// minorPageFaults counts page faults served without I/O since the guest booted (libvirt's "minor_fault").
	// +optional
	// +kubebuilder:validation:Minimum=0
	MinorPageFaults *int64 `json:"minorPageFaults,omitempty"`
	// swapInPerSecond is the swap-in rate as the oVirt agent reports it (its swap_in).
	// +optional
	// +kubebuilder:validation:Minimum=0
	SwapInPerSecond *int64 `json:"swapInPerSecond,omitempty"`
	// swapOutPerSecond is the swap-out rate as the oVirt agent reports it (its swap_out).
	// +optional
	// +kubebuilder:validation:Minimum=0
	SwapOutPerSecond *int64 `json:"swapOutPerSecond,omitempty"`
	// pageFaultsPerSecond is the page-fault rate as the oVirt agent reports it (its pageflt).
	// +optional
	// +kubebuilder:validation:Minimum=0
	PageFaultsPerSecond *int64 `json:"pageFaultsPerSecond,omitempty"`
	// majorPageFaultsPerSecond is the major page-fault rate as the oVirt agent reports it (its majflt).
	// +optional
	// +kubebuilder:validation:Minimum=0
	MajorPageFaultsPerSecond *int64 `json:"majorPageFaultsPerSecond,omitempty"`
}

// GuestLastSession is the guest's previous desktop session.
type GuestLastSession struct {
	// user is the user of the previous session.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	User string `json:"user,omitempty"`
	// loginTime is when that session started, when known.
	// +optional
	LoginTime *metav1.Time `json:"loginTime,omitempty"`
	// logoutTime is when that session ended, when known.
	// +optional
	LogoutTime *metav1.Time `json:"logoutTime,omitempty"`
}

// GuestPCIDevice is one PCI device of the guest and its driver.
type GuestPCIDevice struct {
	// vendorID is the PCI vendor ID (e.g. 6900 = 0x1af4, Red Hat / virtio).
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	VendorID *int32 `json:"vendorID,omitempty"`
	// deviceID is the PCI device ID.
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	DeviceID *int32 `json:"deviceID,omitempty"`
	// driverName is the name of the driver the guest bound to the device.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	DriverName string `json:"driverName,omitempty"`
	// driverVersion is the driver's version.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	DriverVersion string `json:"driverVersion,omitempty"`
	// driverDate is the driver's date, YYYY-MM-DD.
	// +optional
	// +kubebuilder:validation:MaxLength=10
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`
	DriverDate string `json:"driverDate,omitempty"`
}

// GuestContainer is a container running in the guest.
type GuestContainer struct {
	// id is the container id.
	// +required
	// +kubebuilder:validation:MaxLength=256
	ID string `json:"id"`
	// names are the container names.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=256
	Names []string `json:"names,omitempty"`
	// image is the container image.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Image string `json:"image,omitempty"`
	// status is the container status as the runtime reports it.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Status string `json:"status,omitempty"`
	// command is the container command line.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Command string `json:"command,omitempty"`
}

// TruncationCounts counts list entries dropped to respect the list caps.
type TruncationCounts struct {
	// interfaces dropped.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Interfaces int32 `json:"interfaces,omitempty"`
	// addresses dropped (over all interfaces).
	// +optional
	// +kubebuilder:validation:Minimum=0
	Addresses int32 `json:"addresses,omitempty"`
	// filesystems dropped.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Filesystems int32 `json:"filesystems,omitempty"`
	// diskMappings dropped.
	// +optional
	// +kubebuilder:validation:Minimum=0
	DiskMappings int32 `json:"diskMappings,omitempty"`
	// users dropped.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Users int32 `json:"users,omitempty"`
	// applications dropped.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Applications int32 `json:"applications,omitempty"`
	// containers dropped.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Containers int32 `json:"containers,omitempty"`
	// pciDevices dropped.
	// +optional
	// +kubebuilder:validation:Minimum=0
	PCIDevices int32 `json:"pciDevices,omitempty"`
	// strings shortened to their maximum length.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Strings int32 `json:"strings,omitempty"`
}

// DataGroupStatus records where a data group came from and when it last changed.
type DataGroupStatus struct {
	// name is the data group: Hostname, OS, Timezone, Users, Session, Network, Filesystems,
	// Disks, VCPUs, Memory, Applications, Containers or PCIDevices.
	// +required
	// +kubebuilder:validation:Enum=Hostname;OS;Timezone;Users;Session;Network;Filesystems;Disks;VCPUs;Memory;Applications;Containers;PCIDevices
	Name string `json:"name"`
	// source is what supplied the group: QemuGuestAgent, OvirtGuestAgent, or Libvirt (the
	// hypervisor's memory statistics, Memory group only).
	// +required
	Source DataSource `json:"source"`
	// lastChanged is when the group's content last changed.
	// +optional
	LastChanged *metav1.Time `json:"lastChanged,omitempty"`
	// stale is True when the group could not be refreshed and shows the last known content.
	// +optional
	Stale bool `json:"stale,omitempty"`
	// staleReason says why a stale group could not be refreshed: AgentNotResponsive (its agent
	// stopped answering), FilesystemsFrozen (the guest's filesystems are frozen, and the QEMU guest
	// agent refuses most commands until the thaw) or NotReported (no agent has reported the group
	// since agentd started or since the agent came back).
	// +optional
	// +kubebuilder:validation:Enum=AgentNotResponsive;FilesystemsFrozen;NotReported
	StaleReason StaleReason `json:"staleReason,omitempty"`
}

// StaleReason says why a data group could not be refreshed.
type StaleReason string

// Stale reasons of a data group.
const (
	StaleAgentNotResponsive StaleReason = "AgentNotResponsive"
	StaleFilesystemsFrozen  StaleReason = "FilesystemsFrozen"
	StaleNotReported        StaleReason = "NotReported"
)

// ExecutedCommand records one executed GuestAgentCommand.
type ExecutedCommand struct {
	// key is "<namespace>/<name>/<spec hash>" of the command.
	// +required
	// +kubebuilder:validation:MaxLength=600
	Key string `json:"key"`
	// action is the command's action.
	// +required
	Action Action `json:"action"`
	// time is when execution finished.
	// +required
	Time metav1.Time `json:"time"`
}

// GuestAgentStatus is what the guest agents of one libvirt domain report. agentd creates one per
// domain on its node and is its only writer.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=gas,categories=guestagent
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.nodeName`
// +kubebuilder:printcolumn:name="Domain",type=string,JSONPath=`.spec.domainName`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.domain.state`
// +kubebuilder:printcolumn:name="Agent",type=string,JSONPath=`.status.activeAgents`
// +kubebuilder:printcolumn:name="Connected",type=string,JSONPath=`.status.conditions[?(@.type=="AgentConnected")].status`
// +kubebuilder:printcolumn:name="OS",type=string,JSONPath=`.status.os.prettyName`
// +kubebuilder:printcolumn:name="Hostname",type=string,JSONPath=`.status.hostname`
// +kubebuilder:printcolumn:name="IP",type=string,JSONPath=`.status.primaryIP`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="UUID",type=string,JSONPath=`.spec.domainUUID`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.domain.reason`,priority=1
// +kubebuilder:printcolumn:name="Kernel",type=string,JSONPath=`.status.os.kernelRelease`,priority=1
// +kubebuilder:printcolumn:name="QGA",type=string,JSONPath=`.status.qemuAgent.version`,priority=1
// +kubebuilder:printcolumn:name="OGA-API",type=integer,JSONPath=`.status.ovirtAgent.apiVersion`,priority=1
// +kubebuilder:printcolumn:name="Memory",type=integer,JSONPath=`.status.memory.totalBytes`,priority=1
// +kubebuilder:printcolumn:name="Usable",type=integer,JSONPath=`.status.memory.usableBytes`,priority=1
// +kubebuilder:printcolumn:name="Balloon",type=integer,JSONPath=`.status.memory.balloonBytes`,priority=1
// +kubebuilder:printcolumn:name="Responsive",type=string,JSONPath=`.status.conditions[?(@.type=="AgentResponsive")].status`,priority=1
// +kubebuilder:selectablefield:JSONPath=`.spec.nodeName`
// +kubebuilder:selectablefield:JSONPath=`.spec.domainUUID`
type GuestAgentStatus struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec identifies the domain.
	// +required
	Spec GuestAgentStatusSpec `json:"spec"`

	// status is what the guest agents report.
	// +optional
	Status GuestAgentStatusStatus `json:"status,omitzero"`
}

// GuestAgentStatusList is a list of GuestAgentStatus.
//
// +kubebuilder:object:root=true
type GuestAgentStatusList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []GuestAgentStatus `json:"items"`
}
