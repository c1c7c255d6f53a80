package watch_test

import (
	"os"
	"testing"

	"github.com/scailabs/scaivault-run/internal/leakscan"
)

// The leak scan (internal/leakscan), under the names this package's tests use.
var (
	noteSecret      = leakscan.Note
	noteErr         = leakscan.NoteErr
	noteSeedSecrets = leakscan.NoteSeed
)

type scanWriter = leakscan.Writer

func TestMain(m *testing.M) { os.Exit(leakscan.Main(m)) }
