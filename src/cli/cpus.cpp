// `runscope cpus [--json]`: the daemon's CPU pool: reservable, reserved, shared, and which task
// holds which cores.
#include <iostream>

#include "cli/daemon_client.hpp"
#include "cli/daemon_commands.hpp"

namespace runscope::cli {

Command add_cpus(CLI::App& app, const Globals& globals) {
  auto json = std::make_shared<bool>(false);
  auto* sub = app.add_subcommand("cpus", "Show the CPU pool and the cores reserved by tasks");
  sub->add_flag("--json", *json, "Print JSON");
  return {sub, [&globals, json] {
            auto pool = connect_daemon(globals)->cpu_pool();
            if (*json) {
              print_json(pool);
              return 0;
            }
            std::cout << "reservable: " << pool.at("reservable").get<std::string>() << "\n"
                      << "reserved:   " << pool.at("reserved").get<std::string>() << "\n"
                      << "shared:     " << pool.at("shared").get<std::string>() << "\n";
            for (const auto& r : pool.at("reservations")) {
              std::cout << r.at("cpus").get<std::string>() << "\t" << r.at("alloc").get<std::string>() << " "
                        << r.at("task").get<std::string>() << "\n";
            }
            return 0;
          }};
}

}  // namespace runscope::cli
