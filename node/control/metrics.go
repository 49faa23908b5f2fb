package control

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/drive-node/drive-node/node"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsSource is what the metrics are read from: a running *node.Node.
type MetricsSource interface {
	Metrics(ctx context.Context) (node.Metrics, error)
}

// metricsTimeout bounds one scrape's reading of the node.
const metricsTimeout = 10 * time.Second

// collector turns a node.Metrics snapshot, taken at each scrape, into
// Prometheus metrics: nothing is counted twice, and the node keeps no
// Prometheus type.
type collector struct {
	src MetricsSource
	log *slog.Logger

	recorded, applied, bytesIn, bytesOut, conflicts, refused *prometheus.Desc
	peers, pending, held                                     *prometheus.Desc
	lagOps, lagBytes, rate                                   *prometheus.Desc
}

func newCollector(src MetricsSource, log *slog.Logger) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("drive_node_"+name, help, labels, nil)
	}
	return &collector{src: src, log: log,
		recorded:  d("ops_recorded_total", "Changes made on this device recorded in the op log since the daemon started."),
		applied:   d("ops_applied_total", "Peers' changes carried out on this device since the daemon started."),
		bytesIn:   d("content_received_bytes_total", "Content bytes received from peers since the daemon started."),
		bytesOut:  d("content_sent_bytes_total", "Content bytes served to peers since the daemon started."),
		conflicts: d("conflict_copies_total", "Conflict copies made since the daemon started."),
		refused:   d("refused_origins_total", "Devices whose ops a peer session refused since the daemon started."),
		peers:     d("peers_connected", "Peers with a live session."),
		pending:   d("pending_ops", "Peers' ops in the op log not yet applied here."),
		held:      d("held_ops", "Peers' ops the brake holds until approve or reject."),
		lagOps:    d("peer_lag_ops", "Ops still to exchange with a connected peer, by direction (send: it lacks them; receive: this device has not applied them).", "peer", "direction"),
		lagBytes:  d("peer_lag_bytes", "Content bytes of the ops still to exchange with a connected peer, by direction.", "peer", "direction"),
		rate:      d("peer_receive_rate_bytes", "Content bytes per second received from a connected peer lately.", "peer"),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.recorded, c.applied, c.bytesIn, c.bytesOut, c.conflicts, c.refused, c.peers, c.pending, c.held, c.lagOps, c.lagBytes, c.rate} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), metricsTimeout)
	defer cancel()
	m, err := c.src.Metrics(ctx)
	if err != nil {
		c.log.Warn("reading metrics failed", "err", err)
		ch <- prometheus.NewInvalidMetric(c.pending, err)
		return
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(c.recorded, m.OpsRecorded)
	counter(c.applied, m.OpsApplied)
	counter(c.bytesIn, m.BytesIn)
	counter(c.bytesOut, m.BytesOut)
	counter(c.conflicts, m.ConflictCopies)
	counter(c.refused, m.RefusedOrigins)
	gauge(c.peers, float64(m.PeersConnected))
	gauge(c.pending, float64(m.PendingOps))
	gauge(c.held, float64(m.HeldOps))
	for id, p := range m.Peers {
		peer := id.String()
		gauge(c.lagOps, float64(p.ToSendFiles), peer, "send")
		gauge(c.lagOps, float64(p.ToReceiveFiles), peer, "receive")
		gauge(c.lagBytes, float64(p.ToSendBytes), peer, "send")
		gauge(c.lagBytes, float64(p.ToReceiveBytes), peer, "receive")
		gauge(c.rate, p.RateBytesPerS, peer)
	}
}

// MetricsHandler serves src's metrics in the Prometheus text format, from
// a registry of its own (the process-wide default registry is left
// alone), with the Go runtime's and the process's metrics beside them.
func MetricsHandler(src MetricsSource, log *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(src, log), prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Timeout: metricsTimeout, ErrorLog: slogPrinter{log}})
}

// slogPrinter passes promhttp's error lines to a slog.Logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("serving metrics", "err", fmt.Sprint(v...)) }

// ServeMetrics serves src's metrics at /metrics on addr until ctx ends. A
// non-loopback addr is refused unless allowRemote. ready, if not nil, is
// called with the address listened on.
func ServeMetrics(ctx context.Context, src MetricsSource, addr string, allowRemote bool, ready func(net.Addr), log *slog.Logger) error {
	if !allowRemote {
		if err := CheckLoopback(addr); err != nil {
			return err
		}
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics %s: %w", addr, err)
	}
	if ready != nil {
		ready(l.Addr())
	}
	log.Info("metrics listening", "addr", l.Addr().String())
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", MetricsHandler(src, log))
	return serve(ctx, l, mux)
}
