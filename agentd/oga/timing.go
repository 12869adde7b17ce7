package oga

import "time"

// Timing holds the Listener's delays and timeouts. Zero fields take VDSM's values (see
// DefaultTiming); tests shrink them to run fast.
type Timing struct {
	// ConnectRetryDelay is the pause between quick reconnect attempts and after a disconnect
	// (VDSM: one epoll loop, 1 s).
	ConnectRetryDelay time.Duration
	// QuickRetries is the number of failed connects before cooldown (VDSM: 5). The count is
	// reset by a successful read.
	QuickRetries int
	// CooldownDelay is the pause between connect attempts in cooldown (VDSM: the 30 s channel
	// timeout).
	CooldownDelay time.Duration
	// IdleTimeout is the silence after which memory usage is cleared and "timed out" is logged
	// once (VDSM guest_agent_timeout, 30 s).
	IdleTimeout time.Duration
	// ResponsiveTimeout: the agent is responsive while its last valid message is younger than
	// this (VDSM: 120 s).
	ResponsiveTimeout time.Duration
	// WriteTimeout bounds the write of one frame.
	WriteTimeout time.Duration
	// DialTimeout bounds one connect attempt.
	DialTimeout time.Duration
	// FirstConnectWait bounds how long a request made right after Add waits for the first
	// connect attempt (VDSM: the 30 s listener timeout).
	FirstConnectWait time.Duration
	// CompletionTimeout is the default wait for a lifecycle-event completion (VDSM
	// guest_lifecycle_event_reply_timeout, 10 s).
	CompletionTimeout time.Duration
}

// DefaultTiming returns VDSM's timing.
func DefaultTiming() Timing {
	return Timing{
		ConnectRetryDelay: time.Second,
		QuickRetries:      5,
		CooldownDelay:     30 * time.Second,
		IdleTimeout:       30 * time.Second,
		ResponsiveTimeout: 120 * time.Second,
		WriteTimeout:      5 * time.Second,
		DialTimeout:       5 * time.Second,
		FirstConnectWait:  30 * time.Second,
		CompletionTimeout: 10 * time.Second,
	}
}

func (t Timing) withDefaults() Timing {
	def := DefaultTiming()
	set := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	set(&t.ConnectRetryDelay, def.ConnectRetryDelay)
	set(&t.CooldownDelay, def.CooldownDelay)
	set(&t.IdleTimeout, def.IdleTimeout)
	set(&t.ResponsiveTimeout, def.ResponsiveTimeout)
	set(&t.WriteTimeout, def.WriteTimeout)
	set(&t.DialTimeout, def.DialTimeout)
	set(&t.FirstConnectWait, def.FirstConnectWait)
	set(&t.CompletionTimeout, def.CompletionTimeout)
	if t.QuickRetries <= 0 {
		t.QuickRetries = def.QuickRetries
	}
	return t
}
