package providerinfo

// terraform-provider-libvirt v0.8.3 defines a domain, then starts it, and returns the start error
// without undefining it; its pool create likewise leaves the pool defined when the build fails.
// Both errors come before d.SetId, so Pulumi never records the object: destroy cannot remove it
// and every later `up` fails with "already exists". The wrappers below undo that.

import (
	"context"
	"errors"
	"log"
	"os"
	"sync"

	libvirt "github.com/digitalocean/go-libvirt"
	"github.com/dmacvicar/terraform-provider-libvirt/libvirt/uri"
	"github.com/hashicorp/terraform-plugin-sdk/v2/diag"
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"
)

// janitor holds its own connection to the provider's libvirt: the provider's meta (*Client)
// keeps its connection in an unexported field.
type janitor struct {
	mu   sync.Mutex
	uri  string
	conn *libvirt.Libvirt
}

// configure records the provider's `uri`; the connection is opened on the first create.
func (j *janitor) configure(uriText string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if uriText != j.uri && j.conn != nil {
		_ = j.conn.Disconnect()
		j.conn = nil
	}
	j.uri = uriText
}

// connect returns the connection and whether the daemon is on this host (so its paths are ours).
func (j *janitor) connect() (*libvirt.Libvirt, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	u, err := uri.Parse(j.uri)
	if err != nil {
		return nil, false, err
	}
	if j.conn == nil || !j.conn.IsConnected() {
		conn := libvirt.NewWithDialer(u)
		if err := conn.ConnectToURI(libvirt.ConnectURI(u.RemoteName())); err != nil {
			return nil, false, err
		}
		j.conn = conn
	}
	return j.conn, u.Host == "", nil
}

// notFound tells whether err is libvirt's "no such object" of the given kind (go-libvirt's
// IsNotFound knows only domains).
func notFound(err error, code libvirt.ErrorNumber) bool {
	var libvirtErr libvirt.Error
	return errors.As(err, &libvirtErr) && libvirtErr.Code == uint32(code)
}

// undoFunc removes what a failed create defined; nil when there is nothing of ours to remove.
type undoFunc func() error

// guardCreate wraps res's create: before it runs, snapshot notes what already exists (never
// touched); if create fails without setting an ID, the undo it returned runs. The original
// diagnostics are returned unchanged.
func guardCreate(res *schema.Resource, j *janitor,
	snapshot func(conn *libvirt.Libvirt, local bool, d *schema.ResourceData) undoFunc,
) {
	create := res.CreateContext
	res.CreateContext = func(ctx context.Context, d *schema.ResourceData, meta any) diag.Diagnostics {
		var undo undoFunc
		if conn, local, err := j.connect(); err != nil {
			log.Printf("[WARN] twinlab: no cleanup after a failed create: %s", err)
		} else {
			undo = snapshot(conn, local, d)
		}
		diags := create(ctx, d, meta)
		if diags.HasError() && d.Id() == "" && undo != nil {
			if err := undo(); err != nil {
				log.Printf("[WARN] twinlab: cleanup after a failed create: %s", err)
			}
		}
		return diags
	}
}

// domainSnapshot: a shut-off domain of this name that did not exist before create is undefined.
func domainSnapshot(conn *libvirt.Libvirt, _ bool, d *schema.ResourceData) undoFunc {
	name := d.Get("name").(string)
	_, err := conn.DomainLookupByName(name)
	if name == "" || !notFound(err, libvirt.ErrNoDomain) {
		return nil
	}
	return func() error {
		domain, err := conn.DomainLookupByName(name)
		if notFound(err, libvirt.ErrNoDomain) {
			return nil
		} else if err != nil {
			return err
		}
		state, _, err := conn.DomainGetState(domain, 0)
		if err != nil || libvirt.DomainState(state) != libvirt.DomainShutoff {
			return err
		}
		log.Printf("[INFO] twinlab: undefining domain %q, defined by a create that failed", name)
		// The flags the provider's own delete uses (NVRAM of UEFI firmware, and metadata).
		return conn.DomainUndefineFlags(domain, libvirt.DomainUndefineNvram|
			libvirt.DomainUndefineSnapshotsMetadata|libvirt.DomainUndefineManagedSave|
			libvirt.DomainUndefineCheckpointsMetadata)
	}
}

// poolSnapshot: an inactive pool of this name that did not exist before create is undefined, and
// its target directory removed (libvirt only removes an empty one) if create made it.
func poolSnapshot(conn *libvirt.Libvirt, local bool, d *schema.ResourceData) undoFunc {
	name := d.Get("name").(string)
	_, err := conn.StoragePoolLookupByName(name)
	if name == "" || !notFound(err, libvirt.ErrNoStoragePool) {
		return nil
	}
	target := d.Get("target.0.path").(string)
	if target == "" {
		target = d.Get("path").(string) // deprecated spelling
	}
	// Only a local daemon's paths can be checked here; a remote one's directory is left alone.
	_, statErr := os.Stat(target)
	targetWasMissing := local && d.Get("type").(string) == "dir" && os.IsNotExist(statErr)
	return func() error {
		pool, err := conn.StoragePoolLookupByName(name)
		if notFound(err, libvirt.ErrNoStoragePool) {
			return nil
		} else if err != nil {
			return err
		}
		state, _, _, _, err := conn.StoragePoolGetInfo(pool)
		if err != nil || libvirt.StoragePoolState(state) != libvirt.StoragePoolInactive {
			return err
		}
		if _, err := os.Stat(target); targetWasMissing && err == nil {
			if err := conn.StoragePoolDelete(pool, 0); err != nil {
				log.Printf("[WARN] twinlab: removing %s of pool %q: %s", target, name, err)
			}
		}
		log.Printf("[INFO] twinlab: undefining pool %q, defined by a create that failed", name)
		return conn.StoragePoolUndefine(pool)
	}
}

// withCleanup makes the provider undefine what a failed domain/pool create left defined.
func withCleanup(p *schema.Provider) *schema.Provider {
	j := &janitor{}
	configure := p.ConfigureFunc
	p.ConfigureFunc = func(d *schema.ResourceData) (any, error) {
		j.configure(d.Get("uri").(string))
		return configure(d)
	}
	guardCreate(p.ResourcesMap["libvirt_domain"], j, domainSnapshot)
	guardCreate(p.ResourcesMap["libvirt_pool"], j, poolSnapshot)
	return p
}
