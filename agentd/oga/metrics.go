package oga

import "github.com/prometheus/client_golang/prometheus"

// Per-domain channel counters, read from the agents' Stats at scrape time (a domain's series go
// away with the domain).
var (
	descMessages  = prometheus.NewDesc("guestagent_agentd_oga_messages_total", "Valid oVirt guest agent messages received.", []string{"domain_uuid"}, nil)
	descDropped   = prometheus.NewDesc("guestagent_agentd_oga_dropped_lines_total", "Lines dropped as invalid (bad JSON, not an object, no __name__, too deep).", []string{"domain_uuid"}, nil)
	descOversized = prometheus.NewDesc("guestagent_agentd_oga_oversized_lines_total", "Lines dropped for exceeding the 1 MiB message cap.", []string{"domain_uuid"}, nil)
	descUnknown   = prometheus.NewDesc("guestagent_agentd_oga_unknown_messages_total", "Valid messages of a type this side does not handle.", []string{"domain_uuid"}, nil)
	descConnects  = prometheus.NewDesc("guestagent_agentd_oga_connects_total", "Successful connections to the domain's channel.", []string{"domain_uuid"}, nil)
	descConnFails = prometheus.NewDesc("guestagent_agentd_oga_connect_failures_total", "Failed connection attempts to the domain's channel (socket missing, refused or timed out).", []string{"domain_uuid"}, nil)
	descAPI       = prometheus.NewDesc("guestagent_agentd_oga_api_version", "Negotiated oVirt guest agent API version.", []string{"domain_uuid"}, nil)
)

type collector struct{ l *Listener }

// MustRegisterCollector registers a collector of the Listener's per-domain channel counters.
func MustRegisterCollector(reg prometheus.Registerer, l *Listener) { reg.MustRegister(collector{l}) }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMessages, descDropped, descOversized, descUnknown, descConnects, descConnFails, descAPI} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, uuid := range c.l.Domains() {
		a := c.l.Agent(uuid)
		if a == nil {
			continue
		}
		st := a.State()
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), uuid)
		}
		counter(descMessages, st.Stats.Messages)
		counter(descDropped, st.Stats.DroppedLines)
		counter(descOversized, st.Stats.OversizedLines)
		counter(descUnknown, st.Stats.UnknownMessages)
		counter(descConnects, st.Stats.Connects)
		counter(descConnFails, st.Stats.ConnectFailures)
		ch <- prometheus.MustNewConstMetric(descAPI, prometheus.GaugeValue, float64(st.APIVersion), uuid)
	}
}
