package devserver

import (
	"os"
	"testing"

	"github.com/scailabs/scaivault-run/internal/pgtest"
)

// TestMain shares one PostgreSQL among the postgres engine's tests.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
