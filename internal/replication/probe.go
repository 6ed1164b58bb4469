package replication

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
)

// ReplicationEndpoint is the source as the replication user reaches it:
// the subscription's connection settings, from pgmove's host.
func ReplicationEndpoint(m *config.Migration) config.Endpoint {
	ci := m.SubConn.Clone()
	delete(ci, "options")
	from := m.Src.From
	if m.SubConnSet {
		from = "sub_conn"
	}
	return config.Endpoint{Side: config.Source, Conninfo: ci, Cluster: m.Src.Cluster, DB: m.Src.DB, From: from}
}

// ConnectReplication opens a logical replication connection
// (replication=database) to the source as the replication user.
func ConnectReplication(ctx context.Context, m *config.Migration, app string) (*pgconn.PgConn, error) {
	ep := ReplicationEndpoint(m)
	cfg, err := cluster.Config(ep, app)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["replication"] = "database"
	// A walsender takes only these at start-up; the rest are set by SET.
	for _, k := range []string{"statement_timeout", "idle_in_transaction_session_timeout", "lock_timeout"} {
		delete(cfg.RuntimeParams, k)
	}
	conn, err := pgconn.ConnectConfig(ctx, &cfg.Config)
	if err != nil {
		return nil, cluster.ExplainConnect(ep, cfg.User, err)
	}
	return conn, nil
}

// ProbeReplication proves the replication user can open a replication
// connection to the source from pgmove's host: pg_hba, password and the
// REPLICATION attribute all at once.
func ProbeReplication(ctx context.Context, m *config.Migration) error {
	conn, err := ConnectReplication(ctx, m, "check")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := pglogrepl.IdentifySystem(ctx, conn); err != nil {
		return cluster.Wrap(config.Source, "replication connection as "+m.ReplUser, err)
	}
	return nil
}

// ProbeSubscription proves the target server itself can reach the source
// with the subscription's connection string: it creates a subscription to a
// publication that does not exist, inside a transaction it rolls back, so
// nothing is left on either side. PostgreSQL connects to the publisher while
// creating it, which is the test.
func ProbeSubscription(ctx context.Context, dst *cluster.Conn, m *config.Migration) error {
	secret, _ := SubConninfo(m)
	name := fmt.Sprintf("pgmove_probe_%d", os.Getpid())
	tx, err := dst.Begin(ctx)
	if err != nil {
		return dst.Wrap("probe the subscription connection", err)
	}
	defer tx.Rollback(context.Background())
	sql := CreateSubscriptionSQL(name, secret, []string{name}, []Option{
		Bool("connect", true), Bool("create_slot", false), Bool("enabled", false),
		{Key: "slot_name", Value: "NONE"}, Bool("copy_data", false),
	})
	if _, err := tx.Exec(ctx, sql); err != nil {
		msg := cluster.Wrap(config.Target, "connect to the source as the subscription will", err).Error()
		return fmt.Errorf("%s", strings.ReplaceAll(msg, secretValue(secret), "********"))
	}
	return nil
}

// secretValue returns the password inside a conninfo, or a string that
// matches nothing.
func secretValue(conninfo string) string {
	ci, err := config.ParseConninfo(conninfo)
	if err != nil || ci["password"] == "" {
		return "\x00\x00"
	}
	return ci["password"]
}
