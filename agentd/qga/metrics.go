package qga

import (
	"context"
	"encoding/json"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Call metrics of the QEMU guest agent transport, by agent command.
var (
	callDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "guestagent_agentd_qga_call_duration_seconds",
		Help:    "Duration of QEMU guest agent calls (polls and requests), by command.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"command"})
	callErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "guestagent_agentd_qga_call_errors_total",
		Help: "Failed QEMU guest agent calls, by command and error class.",
	}, []string{"command", "class"})
)

// MustRegisterMetrics registers the QGA call metrics with reg (once per process).
func MustRegisterMetrics(reg prometheus.Registerer) { reg.MustRegister(callDuration, callErrors) }

// Instrument wraps a DomainAPI so every call is timed and every failure counted by class.
func Instrument(api DomainAPI) DomainAPI { return instrumented{api} }

type instrumented struct{ api DomainAPI }

func observe(cmd string, start time.Time, err error) {
	callDuration.WithLabelValues(cmd).Observe(time.Since(start).Seconds())
	if err != nil {
		callErrors.WithLabelValues(cmd, string(ClassOf(err))).Inc()
	}
}

var infoCommands = map[InfoType]string{
	InfoUsers: CmdUsers, InfoOS: CmdOSInfo, InfoTimezone: CmdTimezone, InfoHostname: CmdHostName,
	InfoFilesystem: CmdFSInfo, InfoDisks: CmdDisks,
}

func (i instrumented) Raw(ctx context.Context, uuid, cmd string, timeout time.Duration) (json.RawMessage, error) {
	start := time.Now()
	r, err := i.api.Raw(ctx, uuid, cmd, timeout)
	observe(cmd, start, err)
	return r, err
}

func (i instrumented) GuestInfo(ctx context.Context, uuid string, t InfoType, timeout time.Duration) (*GuestInfoReply, error) {
	start := time.Now()
	r, err := i.api.GuestInfo(ctx, uuid, t, timeout)
	cmd, ok := infoCommands[t]
	if !ok {
		cmd = "guest-info-other"
	}
	observe(cmd, start, err)
	return r, err
}

func (i instrumented) Interfaces(ctx context.Context, uuid string, timeout time.Duration) ([]NetInterface, error) {
	start := time.Now()
	r, err := i.api.Interfaces(ctx, uuid, timeout)
	observe(CmdInterfaces, start, err)
	return r, err
}

func (i instrumented) VCPUs(ctx context.Context, uuid string, timeout time.Duration) ([]VCPU, error) {
	start := time.Now()
	r, err := i.api.VCPUs(ctx, uuid, timeout)
	observe(CmdVCPUs, start, err)
	return r, err
}

func (i instrumented) Shutdown(ctx context.Context, uuid string, mode ShutdownMode, timeout time.Duration) error {
	start := time.Now()
	err := i.api.Shutdown(ctx, uuid, mode, timeout)
	observe(CmdShutdown, start, err)
	return err
}

func (i instrumented) Reboot(ctx context.Context, uuid string, timeout time.Duration) error {
	start := time.Now()
	err := i.api.Reboot(ctx, uuid, timeout)
	observe("guest-shutdown-reboot", start, err)
	return err
}

func (i instrumented) Suspend(ctx context.Context, uuid, cmd string, timeout time.Duration) error {
	start := time.Now()
	err := i.api.Suspend(ctx, uuid, cmd, timeout)
	observe(cmd, start, err)
	return err
}

func (i instrumented) FSFreeze(ctx context.Context, uuid string, mps []string, timeout time.Duration) error {
	start := time.Now()
	err := i.api.FSFreeze(ctx, uuid, mps, timeout)
	observe(CmdFSFreeze, start, err)
	return err
}

func (i instrumented) FSThaw(ctx context.Context, uuid string, mps []string, timeout time.Duration) error {
	start := time.Now()
	err := i.api.FSThaw(ctx, uuid, mps, timeout)
	observe(CmdFSThaw, start, err)
	return err
}

func (i instrumented) SetTime(ctx context.Context, uuid string, t time.Time, timeout time.Duration) error {
	start := time.Now()
	err := i.api.SetTime(ctx, uuid, t, timeout)
	observe(CmdSetTime, start, err)
	return err
}

func (i instrumented) SetVCPUs(ctx context.Context, uuid string, ids []int, online bool, timeout time.Duration) error {
	start := time.Now()
	err := i.api.SetVCPUs(ctx, uuid, ids, online, timeout)
	observe(CmdSetVCPUs, start, err)
	return err
}
