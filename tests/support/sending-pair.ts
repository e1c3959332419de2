import { connect, http } from './server-process'

/**
 * Two users and their dialog on a served process, the first connected over the JSON wire: what each of
 * its sends was answered (`ack`, or the error's code), by client_msg_id.
 */
export async function sendingPair(base: string, prefix: string) {
  const register = async (username: string) => (await http(base, 'POST', '/auth/register', { username, password: 'a-secret-password' })).body
  const a = await register(`${prefix}-a`)
  const b = await register(`${prefix}-b`)
  const dialog = (await http(base, 'POST', '/dialogs', { peer_user_id: b.user.id }, a.access_token)).body
  const answers = new Map<string, string>()
  const ws = await connect(base, a.access_token, (frame) => {
    if (frame.type === 'message:ack') answers.set(frame.client_msg_id, 'ack')
    if (frame.type === 'error' && frame.client_msg_id) answers.set(frame.client_msg_id, frame.code)
  })
  const send = (id: string) => ws.send(JSON.stringify({ type: 'message:send', dialog_id: dialog.id, client_msg_id: id, msg_type: 'text', text: id }))
  return { a, b, dialog, answers, ws, send }
}
