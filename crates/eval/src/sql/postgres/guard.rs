//! The role check: model-written SQL does not run as a role that can act outside the database.
//!
//! The statement allow-list ([`check_query`](crate::sql::guard::check_query)) and the `READ ONLY` transaction
//! stop writes, but functions still run with the role's rights: a superuser, or a member of
//! `pg_read_server_files`, `pg_write_server_files` or `pg_execute_server_program`, can read any file the server
//! can (`SELECT pg_read_file('/etc/passwd')`), and worse. [`check_role`] refuses such a role unless the user
//! opted in ([`RolePolicy::AllowPrivileged`]); [`reader_role_sql`] makes a role that can only read.

use postgres::Client;

/// Which roles model-written SQL may run under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RolePolicy {
    /// Refuse a superuser or a member of the file/program roles ([`PRIVILEGED_ROLES`]), directly or through
    /// another role (the default).
    #[default]
    ReadOnly,
    /// Run under any role (`allow_privileged_role = true`): the user accepts that the model's SQL may read the
    /// server's files.
    AllowPrivileged,
}

impl RolePolicy {
    /// [`RolePolicy::AllowPrivileged`] when `allow` (the `allow_privileged_role` setting), else the default.
    pub fn allowing(allow: bool) -> Self {
        if allow {
            Self::AllowPrivileged
        } else {
            Self::ReadOnly
        }
    }
}

/// Predefined roles whose members reach the server's files or programs.
pub const PRIVILEGED_ROLES: &[&str] = &[
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
];

/// Why the connected role is refused: its name and what it is (`"a superuser"`, `"a member of
/// pg_read_server_files"`, ...). `Ok(None)` when it may run model SQL.
pub fn privileged_role(
    client: &mut Client,
) -> Result<Option<(String, Vec<String>)>, postgres::Error> {
    // A role that can SET ROLE to a superuser is as good as one.
    let row = client.query_one(
        "SELECT current_user::text, \
                EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolsuper AND pg_has_role(current_user, r.oid, 'MEMBER')), \
                pg_has_role(current_user, 'pg_read_server_files', 'MEMBER'), \
                pg_has_role(current_user, 'pg_write_server_files', 'MEMBER'), \
                pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER')",
        &[],
    )?;
    let role: String = row.get(0);
    let mut why = Vec::new();
    if row.get::<_, bool>(1) {
        why.push("a superuser (or may become one)".to_string());
    }
    for (i, name) in PRIVILEGED_ROLES.iter().enumerate() {
        if row.get::<_, bool>(i + 2) {
            why.push(format!("a member of {name}"));
        }
    }
    Ok((!why.is_empty()).then_some((role, why)))
}

/// The statements that make `role` a login role able to read (only) the tables of `schemas`, now and later
/// ones created by the current role: `CREATE ROLE` (or `ALTER ROLE` when it exists) with `password`, then
/// `GRANT USAGE`/`GRANT SELECT` per schema. Names and the password are quoted.
pub fn reader_role_sql(
    role: &str,
    password: &str,
    exists: bool,
    schemas: &[String],
) -> Vec<String> {
    let ident = super::quote_ident(role);
    let literal = format!("'{}'", password.replace('\'', "''"));
    let verb = if exists { "ALTER" } else { "CREATE" };
    let mut out = vec![format!(
        "{verb} ROLE {ident} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD {literal}"
    )];
    for schema in schemas {
        let s = super::quote_ident(schema);
        out.push(format!("GRANT USAGE ON SCHEMA {s} TO {ident}"));
        out.push(format!(
            "GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {ident}"
        ));
        out.push(format!(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON TABLES TO {ident}"
        ));
    }
    out
}

/// How to make a read-only role, for error messages.
pub const READER_ROLE_HINT: &str = "connect as a role that can only read instead, e.g. \
    `CREATE ROLE tuneup_reader LOGIN PASSWORD '...'; GRANT USAGE ON SCHEMA my_schema TO tuneup_reader; \
    GRANT SELECT ON ALL TABLES IN SCHEMA my_schema TO tuneup_reader;` (`tuneup eval load-postgres \
    --reader-role tuneup_reader --reader-password-env VAR` does this for the schemas it loads and prints the URL), \
    or set `allow_privileged_role = true` (the eval task's [dataset], the agent's sql tool) to accept the risk";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_role_statements_quote_names() {
        let sql = reader_role_sql("r\"x", "pa'ss", false, &["shop".into()]);
        assert_eq!(
            sql[0],
            "CREATE ROLE \"r\"\"x\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD 'pa''ss'"
        );
        assert_eq!(sql[1], "GRANT USAGE ON SCHEMA \"shop\" TO \"r\"\"x\"");
        assert_eq!(sql.len(), 4);
        assert!(reader_role_sql("r", "p", true, &[])[0].starts_with("ALTER ROLE"));
    }
}
