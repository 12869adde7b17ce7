package guest

// Stats are a guest's volatile performance figures (load, CPU time, disk I/O). They are exported
// as Prometheus metrics only: Stats is deliberately not part of Info, so a new sample never
// counts as a change of the guest data and never causes a GuestAgentStatus write.
type Stats struct {
	// Load is the guest's load average (nil: unknown).
	Load *Load
	// CPU is the guest's CPU time summed over its CPUs, per mode (nil: unknown).
	CPU *CPUTimes
	// Disks are the guest's per-disk I/O counters (nil: unknown), at most MaxStatsDisks, with
	// distinct names.
	Disks []DiskIO
}

// Load is the guest's load average over 1, 5 and 15 minutes.
type Load struct {
	Load1, Load5, Load15 float64
}

// CPUMode is one of the fixed set of CPU time modes (CPUModes).
type CPUMode int

// CPU time modes, as in Linux /proc/stat.
const (
	CPUUser CPUMode = iota
	CPUNice
	CPUSystem
	CPUIdle
	CPUIOWait
	CPUIRQ
	CPUSoftIRQ
	CPUSteal
	CPUGuest
	CPUGuestNice
	NumCPUModes
)

var cpuModeNames = [NumCPUModes]string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice"}

func (m CPUMode) String() string {
	if m < 0 || m >= NumCPUModes {
		return "unknown"
	}
	return cpuModeNames[m]
}

// CPUTimes is CPU time in seconds per mode; Has says which modes the guest reported.
type CPUTimes struct {
	Seconds [NumCPUModes]float64
	Has     [NumCPUModes]bool
}

// MaxStatsDisks bounds the disks of Stats.Disks; MaxStatsDiskName bounds a disk name in bytes.
const (
	MaxStatsDisks    = 16
	MaxStatsDiskName = 32
)

// DiskIO is one guest disk's cumulative I/O counters; Has* say which the guest reported.
type DiskIO struct {
	// Name is the guest's device name (e.g. "vda"), valid UTF-8, at most MaxStatsDiskName bytes.
	Name                                                        string
	ReadBytes                                                   float64
	WriteBytes                                                  float64
	Reads                                                       float64
	Writes                                                      float64
	IOTimeSeconds                                               float64
	HasReadBytes, HasWriteBytes, HasReads, HasWrites, HasIOTime bool
}

// DeepCopy returns an independent copy of s (nil for nil).
func (s *Stats) DeepCopy() *Stats {
	if s == nil {
		return nil
	}
	out := &Stats{}
	if s.Load != nil {
		l := *s.Load
		out.Load = &l
	}
	if s.CPU != nil {
		c := *s.CPU
		out.CPU = &c
	}
	if s.Disks != nil {
		out.Disks = append([]DiskIO{}, s.Disks...)
	}
	return out
}

// Empty reports whether s carries nothing.
func (s *Stats) Empty() bool {
	return s == nil || (s.Load == nil && s.CPU == nil && s.Disks == nil)
}
