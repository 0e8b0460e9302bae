// winston JSON logs; reconcile logs carry namespace and name as fields so one job's history is one filter away.
import winston from "winston";

export type Logger = winston.Logger;

export function createLogger(level: string): Logger {
  return winston.createLogger({
    level,
    format: winston.format.combine(
      winston.format.timestamp(),
      winston.format.errors({ stack: true }),
      winston.format.json(),
    ),
    defaultMeta: { component: "mokd-operator" },
    transports: [new winston.transports.Console({ stderrLevels: ["error", "warn"] })],
  });
}
