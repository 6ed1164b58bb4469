package check

import (
	"context"
	_ "embed"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
)

//go:embed sql/role_references.sql
var roleReferencesSQL string

// roleUse is one object that names a role.
type roleUse struct {
	role, deptype, catalog, object string
}

// carried says whether the schema restore applies this reference to the
// target, given what the migration carries: a policy's roles and a user
// mapping's role always (they are part of the object), an owner with
// --with-owners or --with-grants, a privilege or a default privilege with
// --with-grants.
func (c *checker) carried(u roleUse) bool {
	switch {
	case u.deptype == "r", u.catalog == "pg_user_mapping":
		return true
	case u.catalog == "pg_default_acl":
		return c.o.WithACL
	case u.deptype == "o":
		return c.o.WithOwners || c.o.WithACL
	case u.deptype == "a":
		return c.o.WithACL
	}
	return false
}

// missingRoles finds the roles that the objects the restore carries name
// and the target lacks: the restore would stop at the first ("role ...
// does not exist") after the copy began. With --with-roles pgmove creates
// every role of the source first, so nothing is missing.
func (c *checker) missingRoles(ctx context.Context) error {
	if c.src == nil || c.dst == nil || c.o.WithRoles {
		return nil
	}
	rows, err := c.src.Query(ctx, roleReferencesSQL)
	if err != nil {
		return c.src.Wrap("list the roles objects name", err)
	}
	uses, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (roleUse, error) {
		var u roleUse
		return u, r.Scan(&u.role, &u.deptype, &u.catalog, &u.object)
	})
	if err != nil {
		return c.src.Wrap("list the roles objects name", err)
	}
	byRole := map[string][]string{}
	var wanted []string
	for _, u := range uses {
		if !c.carried(u) {
			continue
		}
		if _, ok := byRole[u.role]; !ok {
			wanted = append(wanted, u.role)
		}
		byRole[u.role] = append(byRole[u.role], describeUse(u))
	}
	if len(wanted) == 0 {
		return nil
	}
	rows, err = c.dst.Query(ctx, "SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY($1)", wanted)
	if err != nil {
		return c.dst.Wrap("list roles", err)
	}
	present, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return c.dst.Wrap("list roles", err)
	}
	there := map[string]bool{}
	for _, r := range present {
		there[r] = true
	}
	var missing []string
	for _, r := range wanted {
		if !there[r] {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	var named, creates []string
	for _, r := range missing {
		objs := byRole[r]
		desc := cluster.ListSome(objs, 2)
		named = append(named, fmt.Sprintf("%s (%s)", pgx.Identifier{r}.Sanitize(), desc))
		creates = append(creates, fmt.Sprintf("CREATE ROLE %s;", pgx.Identifier{r}.Sanitize()))
	}
	shown := named
	if len(shown) > 5 {
		shown = append(shown[:5:5], fmt.Sprintf("and %d more", len(named)-5))
	}
	c.r.add(Error, config.Target, "missing_role", "",
		fmt.Sprintf("%d role(s) that migrated objects name are missing on the target: %s; the schema restore would stop at the first", len(missing), strings.Join(shown, "; ")),
		"pass --with-roles (creates the source's roles the target lacks, without passwords unless --with-role-passwords), or create them on the target:\n"+strings.Join(creates, "\n"))
	return nil
}

// describeUse says how an object names a role: "policy p1 on table
// persons", "owner of table t", "privileges on schema app".
func describeUse(u roleUse) string {
	switch {
	case u.deptype == "r", u.catalog == "pg_user_mapping":
		return u.object
	case u.catalog == "pg_default_acl":
		return u.object
	case u.deptype == "o":
		return "owner of " + u.object
	}
	return "privileges on " + u.object
}
