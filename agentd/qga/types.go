package qga

import (
	"encoding/json"
)

// QGA command names the poller and the request methods use.
const (
	CmdInfo          = "guest-info"
	CmdPing          = "guest-ping"
	CmdUsers         = "guest-get-users"
	CmdOSInfo        = "guest-get-osinfo"
	CmdTimezone      = "guest-get-timezone"
	CmdHostName      = "guest-get-host-name"
	CmdInterfaces    = "guest-network-get-interfaces"
	CmdDevices       = "guest-get-devices"
	CmdVCPUs         = "guest-get-vcpus"
	CmdFSInfo        = "guest-get-fsinfo"
	CmdDisks         = "guest-get-disks"
	CmdLoad          = "guest-get-load"      // metrics only (QEMU ≥ 10)
	CmdCPUStats      = "guest-get-cpustats"  // metrics only (Linux qemu-ga ≥ 7.1)
	CmdDiskStats     = "guest-get-diskstats" // metrics only (Linux qemu-ga ≥ 7.1)
	CmdShutdown      = "guest-shutdown"
	CmdSuspendRAM    = "guest-suspend-ram"
	CmdSuspendHybrid = "guest-suspend-hybrid"
	CmdSuspendDisk   = "guest-suspend-disk"
	CmdFSFreeze      = "guest-fsfreeze-freeze"
	CmdFSFreezeList  = "guest-fsfreeze-freeze-list"
	CmdFSThaw        = "guest-fsfreeze-thaw"
	CmdFSFreezeState = "guest-fsfreeze-status"
	CmdSetTime       = "guest-set-time"
	CmdSetVCPUs      = "guest-set-vcpus"
)

// InfoType is one libvirt GetGuestInfo type bit (values equal libvirt's
// VIR_DOMAIN_GUEST_INFO_*). Exactly one is requested per call, so one unsupported command can
// never hide the others.
type InfoType uint

// GetGuestInfo types.
const (
	InfoUsers      InfoType = 1 << 0
	InfoOS         InfoType = 1 << 1
	InfoTimezone   InfoType = 1 << 2
	InfoHostname   InfoType = 1 << 3
	InfoFilesystem InfoType = 1 << 4
	InfoDisks      InfoType = 1 << 5
)

// Command returns the QGA command libvirt sends for the type.
func (t InfoType) Command() string {
	switch t {
	case InfoUsers:
		return CmdUsers
	case InfoOS:
		return CmdOSInfo
	case InfoTimezone:
		return CmdTimezone
	case InfoHostname:
		return CmdHostName
	case InfoFilesystem:
		return CmdFSInfo
	case InfoDisks:
		return CmdDisks
	}
	return ""
}

// AgentInfo is the guest-info reply.
type AgentInfo struct {
	Version           string        `json:"version"`
	SupportedCommands []CommandInfo `json:"supported_commands"`
}

// CommandInfo is one entry of guest-info's supported_commands.
type CommandInfo struct {
	Name            string `json:"name"`
	Enabled         bool   `json:"enabled"`
	SuccessResponse bool   `json:"success-response"`
}

// OSInfo is the guest-get-osinfo reply.
type OSInfo struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	PrettyName    string `json:"pretty-name"`
	Version       string `json:"version"`
	VersionID     string `json:"version-id"`
	Variant       string `json:"variant"`
	VariantID     string `json:"variant-id"`
	KernelRelease string `json:"kernel-release"`
	KernelVersion string `json:"kernel-version"`
	Machine       string `json:"machine"`
}

// TimezoneInfo is the guest-get-timezone reply (zone is optional on the wire).
type TimezoneInfo struct {
	Zone   string `json:"zone"`
	Offset *int   `json:"offset"` // seconds east of UTC
}

// UserInfo is one guest-get-users entry.
type UserInfo struct {
	User      string  `json:"user"`
	Domain    string  `json:"domain"`
	LoginTime float64 `json:"login-time"` // seconds since the epoch
}

// FSDisk is one disk entry of a guest-get-fsinfo filesystem.
type FSDisk struct {
	Serial  string `json:"serial"`
	Dev     string `json:"dev"`
	BusType string `json:"bus-type"`
}

// FSInfo is one guest-get-fsinfo entry.
type FSInfo struct {
	Name       string   `json:"name"`
	Mountpoint string   `json:"mountpoint"`
	Type       string   `json:"type"`
	TotalBytes *uint64  `json:"total-bytes"`
	UsedBytes  *uint64  `json:"used-bytes"`
	Disk       []FSDisk `json:"disk"`
}

// DiskAddress is the address of a guest-get-disks entry.
type DiskAddress struct {
	Serial  string `json:"serial"`
	Dev     string `json:"dev"`
	BusType string `json:"bus-type"`
}

// DiskInfo is one guest-get-disks entry.
type DiskInfo struct {
	Name      string       `json:"name"`
	Partition bool         `json:"partition"`
	Address   *DiskAddress `json:"address"`
	Alias     string       `json:"alias"`
}

// IPAddress is one address of a guest-network-get-interfaces entry.
type IPAddress struct {
	Type    string `json:"ip-address-type"` // "ipv4" or "ipv6"
	Address string `json:"ip-address"`
	Prefix  *int   `json:"prefix"`
}

// NetInterface is one guest-network-get-interfaces entry.
type NetInterface struct {
	Name            string      `json:"name"`
	HardwareAddress string      `json:"hardware-address"`
	IPAddresses     []IPAddress `json:"ip-addresses"`
}

// VCPU is one guest-get-vcpus entry.
type VCPU struct {
	LogicalID  int  `json:"logical-id"`
	Online     bool `json:"online"`
	CanOffline bool `json:"can-offline"`
}

// HostName is the guest-get-host-name reply.
type HostName struct {
	HostName string `json:"host-name"`
}

// GuestInfoReply is the result of one GetGuestInfo call for one InfoType: only the member of
// the requested type is meaningful.
type GuestInfoReply struct {
	Users    []UserInfo
	OS       *OSInfo
	Timezone *TimezoneInfo
	Hostname *HostName
	FS       []FSInfo
	Disks    []DiskInfo
}

// deviceEntry is one guest-get-devices entry, in either the pre-5.2 format (address.data,
// driver-date "YYYY-MM-DD") or the QEMU ≥ 5.2 format (id, driver-date in ns since the epoch).
type deviceEntry struct {
	DriverName    string          `json:"driver-name"`
	DriverVersion string          `json:"driver-version"`
	DriverDate    json.RawMessage `json:"driver-date"`
	ID            *struct {
		Type     string  `json:"type"`
		VendorID *uint32 `json:"vendor-id"`
		DeviceID *uint32 `json:"device-id"`
	} `json:"id"`
	Address *struct {
		Type string `json:"type"`
		Data *struct {
			VendorID *uint32 `json:"vendor-id"`
			DeviceID *uint32 `json:"device-id"`
		} `json:"data"`
	} `json:"address"`
}
