# Ruby pg and ActiveRecord (Debian's ruby-pg, ruby-activerecord) through the gateway, for
# the driver matrix: ActiveRecord's own connection setup (client_min_messages,
# standard_conforming_strings, intervalstyle, its timezone), a model, transactions, types
# round trip, each tenant sees only its rows, and two connections with their own TimeZone
# interleaved on a pool of one; then the same tenants through a service login, each
# ActiveRecord transaction choosing its tenant with SET LOCAL bulkhead.tenant.
# Usage: ruby matrix_ruby.rb HOST PORT DBNAME KEY... with MATRIX_SERVICE_USER,
# MATRIX_SERVICE_PASSWORD and MATRIX_TENANTS (the keys' tenants, in order).
require "pg"
require "active_record"

host, port, db, *keys = ARGV

def check(ok, what)
  raise "failed: #{what}" unless ok
end

class Customer < ActiveRecord::Base
end

keys.each_with_index do |key, n|
  ActiveRecord::Base.establish_connection(adapter: "postgresql", host: host, port: port.to_i,
                                          database: db, username: "app", password: key,
                                          prepared_statements: true, advisory_locks: false)
  Customer.create!(id: n, name: "mine-#{n}")
  ActiveRecord::Base.transaction do
    Customer.create!(id: 100 + n, name: "second")
  end
  5.times { check(Customer.order(:id).pluck(:name) == ["mine-#{n}", "second"], "own rows") }
  row = ActiveRecord::Base.connection.select_rows(
    "SELECT 7::int, 1099511627776::bigint, 12.345::numeric, 'tëxt'::text, true, " \
    "'12345678-1234-5678-1234-567812345678'::uuid, '{\"a\": 1}'::jsonb, NULL::text").first
  check(row[0] == 7 && row[1] == 1099511627776 && row[3] == "tëxt" && row[4] == true, row.inspect)
  check(row[7].nil?, "null")
  Customer.delete_all
  ActiveRecord::Base.remove_connection
end

conn = ->(key, tz) { PG.connect(host: host, port: port, dbname: db, user: "app", password: key, options: "-c TimeZone=#{tz}") }
a = conn.(keys.first, "America/New_York")
b = conn.(keys.last, "Asia/Tokyo")
3.times do
  check(a.exec("SHOW TimeZone").getvalue(0, 0) == "America/New_York", "a's zone")
  check(b.exec("SHOW TimeZone").getvalue(0, 0) == "Asia/Tokyo", "b's zone")
  r = b.exec_params("SELECT $1::int + 1, $2::text", [41, nil])
  check(r.getvalue(0, 0) == "42" && r.getvalue(0, 1).nil?, "params")
end
a.close
b.close

ActiveRecord::Base.establish_connection(adapter: "postgresql", host: host, port: port.to_i,
                                        database: db, username: ENV.fetch("MATRIX_SERVICE_USER"),
                                        password: ENV.fetch("MATRIX_SERVICE_PASSWORD"),
                                        prepared_statements: true, advisory_locks: false)
# A transaction whose first statement names the tenant (SET takes no parameters: a quoted literal).
def in_tenant(tenant, &work)
  ActiveRecord::Base.transaction do
    c = ActiveRecord::Base.connection
    c.execute("SET LOCAL bulkhead.tenant = #{c.quote(tenant)}")
    work.call
  end
end
tenants = ENV.fetch("MATRIX_TENANTS").split
tenants.each { |t| in_tenant(t) { Customer.create!(id: 900, name: "svc-#{t}") } }
2.times do
  tenants.each do |t|
    in_tenant(t) { check(Customer.where("name LIKE 'svc-%'").pluck(:name) == ["svc-#{t}"], "#{t}'s rows only") }
  end
end
tenants.each { |t| in_tenant(t) { Customer.where(id: 900).delete_all } }
begin
  Customer.count
  raise "a statement with no tenant chosen was not refused"
rescue ActiveRecord::StatementInvalid => e
  check(e.message.include?("no tenant"), e.message)
end
ActiveRecord::Base.remove_connection
puts "ok"
