package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	ossignal "os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/scailabs/scaivault-run/devserver"
	"github.com/scailabs/scaivault-run/fetch"
	"github.com/scailabs/scaivault-run/run"
	"github.com/scailabs/scaivault-run/signal"
	"github.com/scailabs/scaivault-run/template"
	"github.com/scailabs/scaivault-run/user"
)

func actionRun(c *cli.Context, st *status) error {
	opts, err := commonOptions(c)
	if err != nil {
		return err
	}
	opts.Argv = c.Args().Slice()
	if len(opts.Argv) == 0 && len(opts.Templates) == 0 {
		return fmt.Errorf("no command and no template given: scaivault-run [flags] -- command [args...], or --template SRC:DST to keep files fresh without one")
	}
	if err := runOptions(c, &opts); err != nil {
		return err
	}
	if err := filesOnlyOptions(c, &opts); err != nil {
		return err
	}
	// Printed templates are render's: while supervising, every change
	// would print rendered secrets onto the child's stdout.
	for _, spec := range opts.Templates {
		if spec.Dst == template.Stdout {
			return fmt.Errorf("--template %s:-: writing a template to stdout is for the render subcommand only; give a file as destination", spec.Src)
		}
	}
	closeDev, err := startDev(c, &opts)
	if err != nil {
		st.code = run.ExitFailure
		return err
	}
	defer closeDev()
	code, err := run.Launch(c.Context, opts)
	st.code = code
	return err
}

func actionRender(c *cli.Context, st *status) error {
	opts, err := commonOptions(c)
	if err != nil {
		return err
	}
	if c.Args().Len() > 0 {
		return fmt.Errorf("render starts nothing: unexpected arguments %q", c.Args().Slice())
	}
	ro := run.RenderOptions{Format: c.String("format"), ShowValues: c.Bool("show-values"), Stdout: c.App.Writer}
	if ro.Format != "env" && ro.Format != "json" {
		return fmt.Errorf("--format %q: want env or json", ro.Format)
	}
	closeDev, err := startDev(c, &opts)
	if err != nil {
		st.code = run.ExitFailure
		return err
	}
	defer closeDev()
	err = run.Render(c.Context, opts, ro)
	if err != nil {
		st.code = run.ExitFailure
	}
	return err
}

// actionCheck runs the pre-flight: the flags of a run (a command after --
// is accepted and not started), one line per reference, exit 0/1/125.
func actionCheck(c *cli.Context, st *status) error {
	opts, err := commonOptions(c)
	if err != nil {
		return err
	}
	if err := runOptions(c, &opts); err != nil {
		return err
	}
	// --user is not looked up: the machine that checks (a CI runner) often
	// has another user database than the image that runs; its form is.
	if opts.User != "" {
		if _, _, err := user.ParseSpec(opts.User); err != nil {
			return fmt.Errorf("--user %w", err)
		}
	}
	co := run.CheckOptions{Format: c.String("format"), Stdout: c.App.Writer}
	if co.Format != "text" && co.Format != "json" {
		return fmt.Errorf("--format %q: want text or json", co.Format)
	}
	closeDev, err := startDev(c, &opts)
	if err != nil {
		return err
	}
	defer closeDev()
	code, err := run.Check(c.Context, opts, co)
	st.code = code
	return err
}

// commonOptions reads the flags shared by the main job and render.
func commonOptions(c *cli.Context) (run.Options, error) {
	if err := applyConfig(c); err != nil {
		return run.Options{}, err
	}
	logger, err := newLogger(c.App.ErrWriter, c.String("log-level"), c.String("log-format"))
	if err != nil {
		return run.Options{}, err
	}
	client, err := fetch.ConfigFromEnv(os.Getenv)
	if err != nil {
		return run.Options{}, err
	}
	// The flags read the same variables; given on the command line they win.
	str := func(name string) string { return strings.TrimSpace(c.String(name)) }
	client.TLS = fetch.TLSConfig{
		CACert: str("ca-cert"), CAPath: str("ca-path"),
		ClientCert: str("client-cert"), ClientKey: str("client-key"),
		ServerName: str("tls-server-name"), SkipVerify: c.Bool("tls-skip-verify"),
	}
	opts := run.Options{
		Client:         client,
		StartupTimeout: c.Duration("startup-timeout"),
		CleanupTimeout: c.Duration("cleanup-timeout"),
		Stdout:         c.App.Writer,
		Logger:         logger,
		Env: template.EnvSpec{
			Imports:         repeated(c, "secret"),
			Prefix:          c.String("prefix"),
			Upcase:          c.Bool("upcase"),
			EnvFiles:        repeated(c, "env-file"),
			Env:             repeated(c, "env"),
			KeepCredentials: c.Bool("keep-credentials"),
		},
	}
	opts.User = strings.TrimSpace(c.String("user"))
	opts.Client.UserAgent = "scaivault-run/" + version
	opts.Client.Logger = logger
	if !c.Bool("pristine") {
		opts.Env.Inherited = os.Environ()
	}
	if f := c.String("token-file"); f != "" {
		// The flag (or its variable) names the credential to use.
		opts.Client.TokenFile, opts.Client.Token = f, ""
	}
	_, inEnv := os.LookupEnv(envName("template")[0])
	if given := repeated(c, "template"); len(given) > 0 || inEnv {
		for _, s := range given {
			spec, err := template.ParseSpec(s)
			if err != nil {
				return opts, err
			}
			opts.Templates = append(opts.Templates, spec)
		}
	} else {
		opts.Templates = fileTemplates(c) // the command line and the variable replace the file's list
	}
	opts.TemplateOptions.CreateDirs = c.Bool("template-create-dirs")
	opts.TemplateOptions.LookupEnv = templateLookupEnv(opts.Env.KeepCredentials)
	if d := c.String("template-delims"); d != "" {
		if opts.TemplateOptions.Delims, err = template.ParseDelims(d); err != nil {
			return opts, fmt.Errorf("--template-delims: %w", err)
		}
	}
	return opts, nil
}

// templateLookupEnv is what {{ env }} reads: the environment scaivault-run
// was started in, without its own credentials unless they are kept (they
// are unset, as for the child), so that a template cannot write the token
// into a file by accident.
func templateLookupEnv(keep bool) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if !keep && slices.Contains(template.CredentialVars, name) {
			return "", false
		}
		return os.LookupEnv(name)
	}
}

// filesOnlyOptions checks the flags of a run without a command (files
// only: the templates are kept fresh, DESIGN.md "Modes") and reads
// --reload-pid-file, which only that mode has.
func filesOnlyOptions(c *cli.Context, opts *run.Options) error {
	opts.ReloadPidFile = c.String("reload-pid-file")
	if len(opts.Argv) > 0 {
		if opts.ReloadPidFile != "" {
			return errors.New("--reload-pid-file is for a run without a command (files only); with a command, --reload-signal goes to the child")
		}
		return nil
	}
	for _, name := range []string{"env", "env-file", "secret"} {
		if len(repeated(c, name)) > 0 {
			return fmt.Errorf("--%s with no command: there is no child to inject variables into (files only keeps templates fresh; read secrets in them)", name)
		}
	}
	// References in the environment scaivault-run was started with have
	// no child to go to either: not resolved. That environment, without
	// scaivault-run's credentials, is the template commands' own.
	for _, kv := range opts.Env.Inherited {
		name, _, _ := strings.Cut(kv, "=")
		if opts.Env.KeepCredentials || !slices.Contains(template.CredentialVars, name) {
			opts.CommandEnv = append(opts.CommandEnv, kv)
		}
	}
	opts.Env.Inherited = nil
	switch {
	case opts.Once:
		return errors.New("--once with no command: nothing to exec (to render the templates once, use the render subcommand)")
	case opts.Mask:
		return errors.New("--mask with no command: there is no child output to filter (template commands' output is always masked)")
	case opts.Supervisor.ReloadSignal != 0 && opts.ReloadPidFile == "":
		return errors.New("--reload-signal with no command needs --reload-pid-file FILE: the process the signal goes to")
	case opts.ReloadPidFile != "" && opts.Supervisor.ReloadSignal == 0 && !slices.ContainsFunc(opts.Templates, func(sp template.Spec) bool { return sp.ReloadSignal != 0 }):
		return errors.New("--reload-pid-file without --reload-signal (or a template's reload_signal): no signal to send")
	}
	for _, sp := range opts.Templates {
		if sp.ReloadSignal != 0 && opts.ReloadPidFile == "" {
			return fmt.Errorf("template %s: reload_signal with no command needs --reload-pid-file FILE: the process the signal goes to", sp.Dst)
		}
	}
	return nil
}

// runOptions reads the flags of the main job only.
func runOptions(c *cli.Context, opts *run.Options) error {
	var err error
	opts.Once = c.Bool("once")
	opts.PidFile = c.String("pid-file")
	opts.NoRevoke = c.Bool("no-revoke")
	opts.ExitOnLost = c.Bool("exit-on-lost")
	opts.Subreaper = c.Bool("subreaper")
	opts.Mask = c.Bool("mask")
	if opts.Mask && opts.Once {
		return fmt.Errorf("--mask with --once: nothing would remain to filter the child's output (--once replaces scaivault-run with the command)")
	}
	opts.PollInterval = c.Duration("poll-interval")
	opts.StatusAddr = c.String("status-addr")
	opts.Supervisor.KillTimeout = c.Duration("kill-timeout")
	opts.Supervisor.RestartSplay = c.Duration("restart-splay")
	if opts.Supervisor.KillSignal, err = signal.Parse(c.String("kill-signal")); err != nil {
		return fmt.Errorf("--kill-signal: %w", err)
	}
	if s := c.String("reload-signal"); s != "" {
		if opts.Supervisor.ReloadSignal, err = signal.Parse(s); err != nil {
			return fmt.Errorf("--reload-signal: %w", err)
		}
	}
	opts.Supervisor.WaitMin, opts.Supervisor.WaitMax, err = parseWait(c.String("wait"))
	if err != nil {
		return err
	}
	return stateOptions(c, opts)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	ho := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// actionDevServer runs the dev server until SIGINT or SIGTERM.
func actionDevServer(c *cli.Context, st *status) error {
	logger, err := newLogger(c.App.ErrWriter, c.String("log-level"), c.String("log-format"))
	if err != nil {
		return err
	}
	opts := devserver.Options{
		DataFile:  c.String("data"),
		FaultRate: c.Float64("fault-rate"),
		Latency:   c.Duration("latency"),
		ACMEDelay: c.Duration("acme-delay"),
		Logger:    logger,
	}
	if f := c.String("seed"); f != "" {
		if opts.Seed, err = devserver.LoadSeed(f); err != nil {
			return err
		}
	}
	srv, err := devserver.New(opts)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return fmt.Errorf("dev server: %w", err)
	}
	defer ln.Close()
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: tlsErrorLog(logger)}
	url, caFile := "http://"+printableAddr(ln.Addr()), ""
	if useTLS := c.Bool("tls") || c.String("tls-cert") != "" || c.String("tls-key") != "" || c.String("tls-client-ca") != ""; useTLS {
		var tempCA bool
		if url, caFile, tempCA, hs.TLSConfig, err = devTLS(c, srv, ln); err != nil {
			return err
		}
		if tempCA {
			defer os.Remove(caFile) // a default one in the temporary directory goes with the server
		}
	}
	exports := devserver.ExportLines(url, srv.RootToken(), caFile)
	if f := c.String("export-file"); f != "" {
		if err := writeExportFile(f, exports); err != nil {
			return err
		}
		defer os.Remove(f)
	}
	ctx, stop := ossignal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close() // ends the event streams, which Shutdown would wait for
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	fmt.Fprint(c.App.Writer, exports)
	logger.Info("dev server listening", "url", url)
	serve := func() error { return hs.Serve(ln) }
	if hs.TLSConfig != nil {
		serve = func() error { return hs.ServeTLS(ln, "", "") } // ServeTLS offers HTTP/2 too
	}
	if err := serve(); err != nil && err != http.ErrServerClosed {
		return fmt.Errorf("dev server: %w", err)
	}
	return nil
}

// writeExportFile writes the export lines for scripts that start the dev
// server in the background: by a rename once the server listens, so that
// the file's existence says it is ready; 0600, as it holds the root token.
func writeExportFile(name, lines string) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, []byte(lines), 0o600); err != nil {
		return fmt.Errorf("--export-file: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("--export-file: %w", err)
	}
	return nil
}

// devTLS is the dev server's TLS as its flags say; it returns the https
// URL, the CA file it wrote ("" for a given certificate, whose CA the user
// has) and whether that file is the default one in the temporary
// directory, which goes with the server.
func devTLS(c *cli.Context, srv *devserver.Server, ln net.Listener) (url, caFile string, tempCA bool, _ *tls.Config, _ error) {
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	o := devserver.TLSOptions{CertFile: c.String("tls-cert"), KeyFile: c.String("tls-key"), ClientCAFile: c.String("tls-client-ca")}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		o.Hosts = []string{host}
	}
	cfg, err := srv.ServerTLS(o)
	if err != nil {
		return "", "", false, nil, fmt.Errorf("dev server: %w", err)
	}
	if o.CertFile == "" {
		caFile = c.String("tls-ca-out")
		switch {
		case caFile != "":
		case c.String("data") != "":
			caFile = c.String("data") + ".ca.pem" // kept: the CA persists with the data
		default:
			caFile = filepath.Join(os.TempDir(), "scaivault-dev-"+port+"-ca.pem")
			tempCA = true
		}
		if caFile, err = filepath.Abs(caFile); err != nil {
			return "", "", false, nil, fmt.Errorf("dev server: %w", err)
		}
		if err := srv.WriteCAFile(caFile); err != nil {
			return "", "", false, nil, fmt.Errorf("dev server: %w", err)
		}
	}
	return "https://" + printableAddr(ln.Addr()), caFile, tempCA, cfg, nil
}

// printableAddr is the listener's address as a client on this machine
// reaches it: an unspecified address (0.0.0.0, [::]) becomes 127.0.0.1,
// which scaivault-run accepts over plain HTTP and the generated
// certificate holds.
func printableAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// tlsErrorLog sends net/http's own messages (failed handshakes above all)
// to the logger at warn level.
func tlsErrorLog(logger *slog.Logger) *stdlog.Logger {
	return slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
}

// startDev starts the embedded dev server for --dev[=SEED] on a loopback
// port and points opts' client at it with its root token; it returns the
// function that stops it (a no-op without --dev). The dev server lives
// here, not in run: the product packages never import devserver.
func startDev(c *cli.Context, opts *run.Options) (stop func(), err error) {
	d, _ := c.Generic("dev").(*devFlag)
	if d == nil || !d.on {
		return func() {}, nil
	}
	log := opts.Logger
	// The dev server logs a line per request: only wanted when debugging.
	var dopts devserver.Options
	if log.Enabled(context.Background(), slog.LevelDebug) {
		dopts.Logger = log.With("component", "dev-server")
	}
	if d.seed != "" {
		if dopts.Seed, err = devserver.LoadSeed(d.seed); err != nil {
			return nil, err
		}
	}
	srv, err := devserver.New(dopts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("dev server: %w", err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	opts.Client.BaseURL = "http://" + ln.Addr().String()
	opts.Client.Token = srv.RootToken()
	opts.Client.TokenFile, opts.Client.ClientID, opts.Client.ClientSecret = "", "", ""
	log.Info("dev server started", "url", opts.Client.BaseURL)
	return func() {
		srv.Close() // first: it ends the event streams hs.Close would wait for
		hs.Close()
	}, nil
}
