import { KernelMessage } from '@jupyterlab/services';

import { commEvent, shellCommMessage } from '../comm';

const OURS = 'ours-comm-id';
const FROM = { clientId: 'client-1', username: 'someone' };

const KERNEL = { channel: 'iopub' as const, session: 'kernel-session' };

/** IOPub messages as the kernel sends them to every connection of the kernel. */
function commMsg(commId: string): KernelMessage.ICommMsgMsg<'iopub'> {
  return KernelMessage.createMessage<KernelMessage.ICommMsgMsg<'iopub'>>({
    ...KERNEL,
    msgType: 'comm_msg',
    content: { comm_id: commId, data: { type: 'state' } }
  });
}

function commClose(commId: string): KernelMessage.ICommCloseMsg<'iopub'> {
  return KernelMessage.createMessage<KernelMessage.ICommCloseMsg<'iopub'>>({
    ...KERNEL,
    msgType: 'comm_close',
    content: { comm_id: commId, data: {} }
  });
}

describe('commEvent', () => {
  it('picks the kernel messages on our comm out of IOPub', () => {
    const msg = commMsg(OURS);
    expect(commEvent(msg, OURS)).toEqual({ kind: 'msg', msg });
  });

  it('reports the kernel closing our comm (a kernel without ipysession refuses it)', () => {
    const msg = commClose(OURS);
    expect(commEvent(msg, OURS)).toEqual({ kind: 'close', msg });
  });

  it("leaves other comms' messages (ipywidgets') alone", () => {
    expect(commEvent(commMsg('widget'), OURS)).toBeNull();
    expect(commEvent(commClose('widget'), OURS)).toBeNull();
    const open = KernelMessage.createMessage<KernelMessage.ICommOpenMsg<'iopub'>>({
      ...KERNEL,
      msgType: 'comm_open',
      content: { comm_id: OURS, target_name: 'ipysession', data: {} }
    });
    expect(commEvent(open, OURS)).toBeNull();
  });

  it('ignores the rest of IOPub', () => {
    const stream = KernelMessage.createMessage<KernelMessage.IStreamMsg>({
      ...KERNEL,
      msgType: 'stream',
      content: { name: 'stdout', text: OURS }
    });
    expect(commEvent(stream, OURS)).toBeNull();
  });
});

describe('shellCommMessage', () => {
  it('opens the comm to the target with the first request, from this connection', () => {
    const request = { action: 'subscribe', id: 1 };
    const msg = shellCommMessage('comm_open', FROM, OURS, request, 'ipysession');
    expect(msg.channel).toBe('shell');
    expect(msg.header.msg_type).toBe('comm_open');
    expect(msg.header.session).toBe('client-1');
    expect(msg.header.username).toBe('someone');
    expect(msg.content).toEqual({
      comm_id: OURS,
      target_name: 'ipysession',
      data: request
    });
  });

  it('sends requests and the close on the same comm id, with fresh message ids', () => {
    const first = shellCommMessage('comm_msg', FROM, OURS, { action: 'snapshots', id: 2 });
    const second = shellCommMessage('comm_msg', FROM, OURS, { action: 'snapshots', id: 3 });
    expect(first.content).toEqual({ comm_id: OURS, data: { action: 'snapshots', id: 2 } });
    expect(first.header.msg_id).not.toBe(second.header.msg_id);
    const close = shellCommMessage('comm_close', FROM, OURS, {});
    expect(close.header.msg_type).toBe('comm_close');
    expect(close.content).toEqual({ comm_id: OURS, data: {} });
  });
});
