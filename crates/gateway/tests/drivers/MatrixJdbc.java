// pgJDBC (Debian's libpostgresql-jdbc-java) through the gateway, for the driver matrix: its
// startup (TimeZone, extra_float_digits, DateStyle, application_name), server-side prepared
// statements past prepareThreshold, batch inserts, transactions, types round trip, each
// tenant sees only its rows, and two connections with their own TimeZone interleaved on a
// pool of one; then the same tenants through a service login, each transaction choosing its
// tenant with SET LOCAL bulkhead.tenant. Usage: java -cp postgresql.jar MatrixJdbc.java HOST
// PORT DBNAME KEY... with MATRIX_SERVICE_USER, MATRIX_SERVICE_PASSWORD and MATRIX_TENANTS
// (the keys' tenants, in order).
import java.math.BigDecimal;
import java.sql.*;
import java.util.*;

public class MatrixJdbc {
    static Connection connect(String host, String port, String db, String key, String tz) throws SQLException {
        return connectAs(host, port, db, "app", key, tz);
    }

    static Connection connectAs(String host, String port, String db, String user, String key, String tz) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", user);
        p.setProperty("password", key);
        p.setProperty("prepareThreshold", "2");
        p.setProperty("ApplicationName", "matrix-jdbc");
        if (tz != null) p.setProperty("options", "-c TimeZone=" + tz);
        return DriverManager.getConnection("jdbc:postgresql://" + host + ":" + port + "/" + db, p);
    }

    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    public static void main(String[] a) throws Exception {
        String host = a[0], port = a[1], db = a[2];
        List<String> keys = Arrays.asList(a).subList(3, a.length);
        for (int n = 0; n < keys.size(); n++) {
            try (Connection c = connect(host, port, db, keys.get(n), null)) {
                try (PreparedStatement ps = c.prepareStatement(
                        "SELECT ?::int, ?::bigint, ?::numeric, ?::text, ?::bool, ?::uuid, ?::bytea, ?::text, '{1,2}'::int[], '{\"a\":1}'::jsonb")) {
                    for (int i = 0; i < 5; i++) { // past prepareThreshold
                        ps.setInt(1, 7);
                        ps.setLong(2, 1L << 40);
                        ps.setBigDecimal(3, new BigDecimal("12.345"));
                        ps.setString(4, "tëxt");
                        ps.setBoolean(5, true);
                        ps.setObject(6, UUID.fromString("12345678-1234-5678-1234-567812345678"));
                        ps.setBytes(7, new byte[] {0, (byte) 255});
                        ps.setNull(8, Types.VARCHAR);
                        try (ResultSet rs = ps.executeQuery()) {
                            check(rs.next(), "a row");
                            check(rs.getInt(1) == 7 && rs.getLong(2) == 1L << 40, "ints");
                            check(rs.getBigDecimal(3).equals(new BigDecimal("12.345")), "numeric");
                            check(rs.getString(4).equals("tëxt") && rs.getBoolean(5), "text, bool");
                            check(rs.getObject(6).equals(UUID.fromString("12345678-1234-5678-1234-567812345678")), "uuid");
                            check(Arrays.equals(rs.getBytes(7), new byte[] {0, (byte) 255}), "bytea");
                            check(rs.getString(8) == null, "null");
                            Integer[] arr = (Integer[]) rs.getArray(9).getArray();
                            check(arr.length == 2 && arr[1] == 2, "array");
                            check(rs.getString(10).equals("{\"a\": 1}"), "jsonb " + rs.getString(10));
                        }
                    }
                }
                c.setAutoCommit(false);
                try (PreparedStatement ins = c.prepareStatement("INSERT INTO customers (id, name) VALUES (?, ?)")) {
                    for (int i = 0; i < 10; i++) {
                        ins.setInt(1, i == 0 ? n : 100 + i);
                        ins.setString(2, i == 0 ? "mine-" + n : "batch");
                        ins.addBatch();
                    }
                    ins.executeBatch();
                }
                c.commit();
                c.setAutoCommit(true);
                try (Statement st = c.createStatement();
                     ResultSet rs = st.executeQuery("SELECT name FROM customers WHERE name <> 'batch'")) {
                    check(rs.next() && rs.getString(1).equals("mine-" + n) && !rs.next(), "own rows only");
                }
                try (Statement st = c.createStatement()) {
                    st.execute("DELETE FROM customers");
                }
            }
        }
        try (Connection x = connect(host, port, db, keys.get(0), "America/New_York");
             Connection y = connect(host, port, db, keys.get(keys.size() - 1), "Asia/Tokyo")) {
            for (int i = 0; i < 3; i++) {
                check(show(x).equals("America/New_York"), "x's zone " + show(x));
                check(show(y).equals("Asia/Tokyo"), "y's zone " + show(y));
            }
        }
        serviceLogin(host, port, db);
        System.out.println("ok");
    }

    /** SET takes no parameters, so the slug goes in as a quoted literal. */
    static void choose(Connection c, String tenant) throws SQLException {
        try (Statement st = c.createStatement()) {
            st.execute("SET LOCAL bulkhead.tenant = '" + tenant.replace("'", "''") + "'");
        }
    }

    static void serviceLogin(String host, String port, String db) throws SQLException {
        String[] tenants = System.getenv("MATRIX_TENANTS").split(" ");
        try (Connection c = connectAs(host, port, db, System.getenv("MATRIX_SERVICE_USER"),
                System.getenv("MATRIX_SERVICE_PASSWORD"), null)) {
            c.setAutoCommit(false);
            for (String t : tenants) {
                choose(c, t);
                try (PreparedStatement ins = c.prepareStatement("INSERT INTO customers (id, name) VALUES (?, ?)")) {
                    ins.setInt(1, 900);
                    ins.setString(2, "svc-" + t);
                    ins.executeUpdate();
                }
                c.commit();
            }
            // A rolled-back transaction leaves nothing (pgJDBC sends its BEGIN and the first
            // statement as two unnamed statements in one unit: the gateway must see the BEGIN).
            choose(c, tenants[0]);
            try (Statement st = c.createStatement()) {
                st.execute("INSERT INTO customers (id, name) VALUES (901, 'rolled-back')");
            }
            c.rollback();
            for (int round = 0; round < 2; round++) {
                for (String t : tenants) { // past prepareThreshold, across tenants
                    choose(c, t);
                    try (PreparedStatement ps = c.prepareStatement("SELECT name FROM customers WHERE name LIKE ?")) {
                        ps.setString(1, "svc-%");
                        try (ResultSet rs = ps.executeQuery()) {
                            check(rs.next() && rs.getString(1).equals("svc-" + t) && !rs.next(), t + "'s rows only");
                        }
                    }
                    try (Statement st = c.createStatement();
                         ResultSet rs = st.executeQuery("SELECT count(*) FROM customers WHERE id = 901")) {
                        check(rs.next() && rs.getLong(1) == 0, "the rolled-back row is not there");
                    }
                    c.commit();
                }
            }
            for (String t : tenants) {
                choose(c, t);
                try (Statement st = c.createStatement()) {
                    st.execute("DELETE FROM customers WHERE id = 900");
                }
                c.commit();
            }
            try (Statement st = c.createStatement()) {
                st.executeQuery("SELECT name FROM customers");
                throw new AssertionError("a statement with no tenant chosen was not refused");
            } catch (SQLException e) {
                check("42501".equals(e.getSQLState()) && e.getMessage().contains("no tenant"), e.toString());
                c.rollback();
            }
        }
    }

    static String show(Connection c) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SHOW TimeZone")) {
            rs.next();
            return rs.getString(1);
        }
    }
}
