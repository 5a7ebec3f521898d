// gatehouse's Logger takes pino as it is (compiled by packages/gatehouse/test/package/types.test.ts): no wrapper, no cast.
import { pino } from 'pino';
import type { Logger } from 'gatehouse';
import { gatehouseExpress } from 'gatehouse/express';

const logger: Logger = pino({ level: 'warn' });

export const express = (options: Omit<Parameters<typeof gatehouseExpress>[0], 'logger'>) =>
  gatehouseExpress({ ...options, logger: pino() });
export default logger;
