package pgtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pgmove/pgmove/internal/pgserver"
)

// TLS is a certificate authority of the test's own, a server certificate
// for 127.0.0.1 it signed, and client certificates (common name = the
// role), in files the postgres OS user owns and reads: servers and their
// subscriptions use them too.
type TLS struct {
	Dir, CA, ServerCert, ServerKey string
	ca                             *x509.Certificate
	caKey                          *ecdsa.PrivateKey
	t                              testing.TB
}

// NewTLS makes the authority and the server's certificate.
func NewTLS(t testing.TB) *TLS {
	t.Helper()
	root := os.Getenv("PGMOVE_RUN_DIR")
	if root == "" {
		root = "/var/tmp/pgmove-run"
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(root, "tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	x := &TLS{Dir: dir, t: t}
	x.chown(dir)
	x.caKey = newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pgmove test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &x.caKey.PublicKey, x.caKey)
	if err != nil {
		t.Fatal(err)
	}
	if x.ca, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	x.CA = x.write("ca.crt", "CERTIFICATE", der)
	x.ServerCert, x.ServerKey = x.issue("server", "127.0.0.1", []net.IP{net.ParseIP("127.0.0.1")}, x509.ExtKeyUsageServerAuth)
	return x
}

// Client issues a client certificate for role and returns its files.
func (x *TLS) Client(role string) (cert, key string) {
	return x.issue(role, role, nil, x509.ExtKeyUsageClientAuth)
}

// Server has a server take TLS connections with the certificate, trust the
// authority for client certificates, and put hba's lines first.
func (x *TLS) Server(hba ...string) func(*pgserver.Options) {
	return func(o *pgserver.Options) {
		if o.Settings == nil {
			o.Settings = map[string]string{}
		}
		o.Settings["ssl"] = "on"
		o.Settings["ssl_cert_file"] = x.ServerCert
		o.Settings["ssl_key_file"] = x.ServerKey
		o.Settings["ssl_ca_file"] = x.CA
		o.HBA = append(o.HBA, hba...)
	}
}

var serial int64 = 1

func (x *TLS) issue(name, cn string, ips []net.IP, usage x509.ExtKeyUsage) (cert, key string) {
	x.t.Helper()
	k := newKey(x.t)
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, x.ca, &k.PublicKey, x.caKey)
	if err != nil {
		x.t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		x.t.Fatal(err)
	}
	return x.write(name+".crt", "CERTIFICATE", der), x.write(name+".key", "PRIVATE KEY", kd)
}

func (x *TLS) write(name, kind string, der []byte) string {
	x.t.Helper()
	path := filepath.Join(x.Dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		x.t.Fatal(err)
	}
	x.chown(path)
	return path
}

// chown gives path to the postgres OS user when running as root (servers
// run as postgres; libpq and the server refuse a key others can read).
func (x *TLS) chown(path string) {
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		x.t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		x.t.Fatal(err)
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
